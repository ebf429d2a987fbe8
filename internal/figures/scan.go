package figures

import (
	"fmt"
	"regexp"
	"strings"
)

// measured matches what reads like a measured figure: a ratio (1.02x), a
// time (123 us, 0.78 s), a rate (45,000 docs/s, 5.4 GFLOP/s), a share
// (64%) or a size (1.98 GB). A heuristic: numbers that are not
// measurements (defaults, limits, config values) are allowed by Allowed.
var measured = regexp.MustCompile(`\d[\d,]*(?:\.\d+)?(?:x\b|\s?(?:us|µs|ms|ns)\b|\s?(?:docs|calls|MB|GB|KB|GFLOP)/s\b|\s?%|\s?(?:MB|GB|GiB|MiB)\b)|\b\d+\.\d+\s?s\b`)

// codeSpan is inline code: commands and flags, whose numbers are settings.
var codeSpan = regexp.MustCompile("`[^`\n]*`")

// Finding is a measured figure outside any block.
type Finding struct {
	Line int
	Text string // the figure
	In   string // its line
}

func (f Finding) String() string { return fmt.Sprintf("line %d: %q in %q", f.Line, f.Text, f.In) }

// Scan finds the measured figures of md outside its figure blocks, HTML
// comments, inline code and command lines ("$ ...", "ferry ...", "go ...", "docker ..."), on lines no
// entry of allowed is a substring of.
func Scan(md string, allowed []string) ([]Finding, error) {
	bs, err := Blocks(md)
	if err != nil {
		return nil, err
	}
	inBlock := func(off int) bool {
		for _, b := range bs {
			if off >= b.Start && off < b.End {
				return true
			}
		}
		return false
	}
	var out []Finding
	off := 0
	comment := false
lines:
	for i, line := range strings.SplitAfter(md, "\n") {
		at := off
		off += len(line)
		if inBlock(at) {
			continue
		}
		if strings.Contains(line, "<!--") {
			comment = true
		}
		if comment {
			if strings.Contains(line, "-->") {
				comment = false
			}
			continue
		}
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "$ ") || strings.HasPrefix(t, "ferry ") || strings.HasPrefix(t, "go ") || strings.HasPrefix(t, "docker ") {
			continue // a command as typed: its numbers are flags
		}
		for _, a := range allowed {
			if strings.Contains(line, a) {
				continue lines
			}
		}
		plain := codeSpan.ReplaceAllString(line, "``")
		for _, m := range measured.FindAllString(plain, -1) {
			out = append(out, Finding{Line: i + 1, Text: m, In: strings.TrimSpace(line)})
		}
	}
	return out, nil
}
