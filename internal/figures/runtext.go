package figures

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ferrylab/ferry/report"
)

// The README's sample runs (its opening and the CPU breakdown under it):
// `ferry run -q` as a user first runs it, once with one round and once
// with the default three. Each is kept as --format json (it repeats
// inside) and shown as the text report renders that JSON.
var runSet = Set{Name: "run", Cmds: []Cmd{
	{Key: "run-once", Once: true, Args: []string{"run", "-q", "--repeat", "1"}, Quick: []string{"run", "-q", "--repeat", "1", "--docs", "20000"}},
	{Key: "run-repeats", Once: true, Args: []string{"run", "-q"}, Quick: []string{"run", "-q", "--docs", "20000"}},
}}

// runText is the text report of key's first run, rendered from its JSON
// by the report package (as `ferry run` prints it), and the command.
func runText(d *Data, key string) (text, cmd string, err error) {
	rs := d.Of(key)
	if len(rs) == 0 {
		return "", "", fmt.Errorf("no %s run", key)
	}
	var r report.Report
	if err := json.Unmarshal(rs[0].Output, &r); err != nil {
		return "", "", fmt.Errorf("%s: %w", key, err)
	}
	var b bytes.Buffer
	if err := report.Write(&b, &r, "text"); err != nil {
		return "", "", fmt.Errorf("%s: %w", key, err)
	}
	return b.String(), rs[0].Command, nil
}

// isBreakdown says whether a text report's line belongs to the CPU
// breakdown printed under the boundary CPU line: from its heading to the
// line before the blank one.
func breakdownLines(lines []string) (start, end int) {
	start, end = -1, -1
	for i, l := range lines {
		if start < 0 && strings.HasPrefix(strings.TrimSpace(l), "CPU per doc by process and part") {
			start = i
		}
		if start >= 0 && strings.TrimSpace(l) == "" {
			return start, i
		}
	}
	if start >= 0 {
		end = len(lines)
	}
	return start, end
}

// codeBlock is text as a fenced block under "$ command".
func codeBlock(cmd string, lines []string) string {
	return "```\n$ " + cmd + "\n" + strings.TrimRight(strings.Join(lines, "\n"), "\n") + "\n```\n"
}

// renderRunSample is the README's first sample: one round's text report,
// without the CPU breakdown (figure:run-breakdown shows it).
func renderRunSample(d *Data) (string, error) {
	text, cmd, err := runText(d, "run-once")
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if s, e := breakdownLines(lines); s >= 0 {
		lines = append(lines[:s:s], lines[e:]...)
	}
	return codeBlock(cmd, lines), nil
}

// renderRunBreakdown is the CPU breakdown of the same run.
func renderRunBreakdown(d *Data) (string, error) {
	text, cmd, err := runText(d, "run-once")
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	s, e := breakdownLines(lines)
	if s < 0 {
		return "", fmt.Errorf("run-once: no CPU breakdown (cpu_breakdown) in the report")
	}
	return codeBlock(cmd+"  # the lines under the boundary CPU line", lines[s:e]), nil
}

// section is the lines of text from the first one containing s to the
// next blank line.
func section(text, s string) ([]string, error) {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	for i, l := range lines {
		if strings.Contains(l, s) {
			j := i
			for j < len(lines) && strings.TrimSpace(lines[j]) != "" {
				j++
			}
			return lines[i:j], nil
		}
	}
	return nil, fmt.Errorf("no line containing %q", s)
}

// containing is the lines of text that contain s.
func containing(text, s string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// renderRunRepeats is the repeats section of the default three-round run.
func renderRunRepeats(d *Data) (string, error) {
	text, cmd, err := runText(d, "run-repeats")
	if err != nil {
		return "", err
	}
	lines, err := section(text, "rounds, modes interleaved")
	if err != nil {
		return "", fmt.Errorf("run-repeats: %w", err)
	}
	return codeBlock(cmd+"  # the section under the table", lines), nil
}
