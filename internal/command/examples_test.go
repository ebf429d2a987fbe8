package command

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestExamplesParse: every example command in the --help texts and in the
// README's shell blocks names a command that exists and flags it takes, so
// a newcomer who copies one gets past flag parsing. The commands are not
// run (they start fleets and brokers); their flags are parsed as main
// would, with each command's RunE replaced by one that loads its options.
func TestExamplesParse(t *testing.T) {
	var lines []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, l := range strings.Split(c.Example, "\n") {
			lines = append(lines, l)
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newCmdRoot())
	lines = append(lines, readmeShellLines(t, "../../README.md")...)
	n := 0
	for _, line := range joinContinued(lines) {
		args, ok := ferryArgs(line)
		if !ok {
			continue
		}
		n++
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			root := newCmdRoot()
			var stub func(c *cobra.Command)
			stub = func(c *cobra.Command) {
				if c.RunE != nil {
					c.RunE = func(*cobra.Command, []string) error { return nil }
				}
				for _, s := range c.Commands() {
					stub(s)
				}
			}
			stub(root)
			root.SetArgs(args)
			root.SetOut(new(strings.Builder))
			if err := root.Execute(); err != nil {
				t.Errorf("%q: %v", line, err)
			}
		})
	}
	if n < 20 {
		t.Fatalf("found %d example commands; want the --help and README examples (20 or more)", n)
	}
}

// readmeShellLines is the lines of the README's ```sh blocks.
func readmeShellLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "```sh"):
			in = true
		case strings.HasPrefix(l, "```"):
			in = false
		case in:
			out = append(out, l)
		}
	}
	return out
}

// joinContinued joins lines ending in a backslash with the next.
func joinContinued(lines []string) []string {
	var out []string
	cur := ""
	for _, l := range lines {
		if s, ok := strings.CutSuffix(strings.TrimRight(l, " "), `\`); ok {
			cur += s + " "
			continue
		}
		out = append(out, cur+l)
		cur = ""
	}
	return out
}

// ferryArgs is the arguments of a ferry command line ("ferry ...", "go run
// ./cmd/ferry ...", after any VAR=value), cut at a comment, pipe, redirect
// or "&&"; ok is false for other lines.
func ferryArgs(line string) (args []string, ok bool) {
	f := shellWords(line)
	for len(f) > 0 && strings.Contains(f[0], "=") && !strings.HasPrefix(f[0], "-") {
		f = f[1:] // FERRY_X=... in front
	}
	switch {
	case len(f) > 0 && f[0] == "ferry":
		f = f[1:]
	case len(f) > 2 && f[0] == "go" && f[1] == "run" && f[2] == "./cmd/ferry":
		f = f[3:]
	default:
		return nil, false
	}
	for i, w := range f {
		if w == "#" || w == "|" || w == ">" || w == "&&" || strings.HasPrefix(w, "#") || strings.HasPrefix(w, ">") {
			return f[:i], true
		}
	}
	return f, true
}

// shellWords splits a line into words, honouring single and double quotes.
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	word, quote := false, rune(0)
	for _, r := range strings.TrimSpace(s) {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, word = r, true
		case r == ' ' || r == '\t':
			if word {
				out = append(out, cur.String())
				cur.Reset()
				word = false
			}
		default:
			cur.WriteRune(r)
			word = true
		}
	}
	if word {
		out = append(out, cur.String())
	}
	return out
}
