package command

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// TestExamplesParse: every example command in the --help texts and in the
// README's shell blocks names a command that exists and flags it takes, so
// a newcomer who copies one gets past flag parsing. The commands are not
// run (they start fleets and brokers); their flags are parsed as main
// would, with each command's RunE replaced by one that loads its options.
func TestExamplesParse(t *testing.T) {
	n := 0
	for _, line := range exampleLines(t) {
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

// exampleLines is every line of the --help examples and the README's
// shell blocks, continued lines joined.
func exampleLines(t *testing.T) []string {
	t.Helper()
	var lines []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		lines = append(lines, strings.Split(c.Example, "\n")...)
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newCmdRoot())
	lines = append(lines, readmeShellLines(t, "../../README.md")...)
	return joinContinued(lines)
}

// TestExamplesRun runs the cheap examples of the --help texts and the
// README with the built binary, as a reader would, and wants exit 0: a
// run with a small corpus (--docs appended, which overrides the example's
// own), the in-process LLM and pipeline rows, the transport bench with
// few round trips. The others are skipped by exampleCost, each with its
// reason (a server that runs until stopped, a peer or file the reader
// brings, a sweep of many runs that sweep_test.go covers).
func TestExamplesRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ferry with worker processes")
	}
	path := filepath.Dir(ferryBin) + string(os.PathListSeparator) + os.Getenv("PATH") // "ferry exec-serve" in an example
	ran := 0
	seen := map[string]bool{}
	for _, line := range exampleLines(t) {
		args, ok := ferryArgs(line)
		if !ok || seen[strings.Join(args, " ")] {
			continue
		}
		seen[strings.Join(args, " ")] = true
		extra, skip := exampleCost(args)
		if skip != "" {
			t.Logf("skip %q: %s", line, skip)
			continue
		}
		ran++
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, ferryBin, append(slices.Clone(args), extra...)...)
			cmd.Dir = t.TempDir() // --out files land here
			cmd.Env = append(os.Environ(), "PATH="+path, "FERRY_LOG_LEVEL=warn")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("%q with %v: %v\n%s", line, extra, err, out)
			}
		})
	}
	if ran < 8 {
		t.Errorf("ran %d examples, want 8 or more (the cheap run, pipeline, llm and bench ones)", ran)
	}
}

// exampleCost says how to run an example cheaply (extra flags, appended)
// or why it is not run (skip).
func exampleCost(args []string) (extra []string, skip string) {
	has := func(flag string) bool { return slices.Contains(args, flag) }
	if len(args) == 0 {
		return nil, "no command"
	}
	switch args[0] {
	case "run":
		switch {
		case has("--input"):
			return nil, "reads the reader's own documents"
		case has("--nats-url"):
			return nil, "needs a broker"
		}
		return []string{"--docs", "2000", "-q"}, ""
	case "pipeline":
		if has("--input") || has("--llm-url") {
			return nil, "reads the reader's own documents or LLM server"
		}
		return []string{"--docs", "50", "-q"}, ""
	case "llm":
		if has("--llm-url") {
			return nil, "needs an LLM server"
		}
		return []string{"--docs", "200"}, ""
	case "bench":
		if has("--python") {
			if _, err := os.Stat(args[slices.Index(args, "--python")+1]); err != nil {
				return nil, "no such Python here"
			}
		}
		return []string{"--roundtrips", "20", "--sizes", "64,64KiB"}, ""
	case "workloads", "version", "help":
		return nil, ""
	case "broker", "worker", "mockllm", "exec-serve":
		return nil, "serves until stopped"
	case "coordinator", "health":
		return nil, "needs a broker, workers or a server to ask"
	case "diff":
		return nil, "compares the reader's records files"
	case "sweep", "recommend", "capacity":
		return nil, "a sweep of many runs, minutes long (sweep_test.go and capacity's tests run small ones)"
	}
	return nil, "not classified: add it to exampleCost"
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
