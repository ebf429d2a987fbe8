package figures

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Cmd is one ferry command behind a figure.
type Cmd struct {
	Key   string
	Args  []string // after "ferry"
	Quick []string // the same at small sizes (FIGURES_QUICK=1); nil = Args
	// Text: run once in text format and keep stdout (a sample of the
	// output, shown as the reader would see it); otherwise run every round
	// with --format json.
	Text bool
	// Once: a JSON command run in the first round only (it repeats inside,
	// as ferry capacity does with --repeats).
	Once bool
	// Go: Args are for the go command (go test -bench ...), run in the
	// repository root once, its stdout kept as Text.
	Go bool
	// Sh: Args[0] is a shell command (bash -c) run in the repository root
	// once, its stdout kept as Text: scripts of their own (scripts/scale.sh).
	Sh bool
	// Env is added to the command's environment ("KEY=value").
	Env []string
}

// Set is the commands whose runs one data file holds.
type Set struct {
	Name string
	Cmds []Cmd
}

// args is c's arguments in the given mode.
func (c Cmd) args(quick bool) []string {
	if quick && c.Quick != nil {
		return c.Quick
	}
	return c.Args
}

// Command is how a reader types c: "ferry " and the arguments, quoted for
// a POSIX shell where needed.
func Command(args []string) string { return command("ferry", args) }

func command(prog string, args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`;&|<>()*?[]{}!#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(append([]string{prog}, q...), " ")
}

// Options says how Run runs a set.
type Options struct {
	Bin     string    // the ferry binary
	Quick   bool      // small sizes
	Repeats int       // rounds of the JSON commands; 0 = 1
	Log     io.Writer // progress and the commands' stderr; nil = discard
	Root    string    // the repository root, where Go commands run; "" = the current directory
}

// Measure runs every command of s, rounds interleaved (each round runs every
// JSON command once, so drift on a shared machine spreads over all of
// them), the text samples once after the first round.
func Measure(ctx context.Context, s Set, o Options) (*Data, error) {
	if o.Repeats < 1 {
		o.Repeats = 1
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if abs, err := filepath.Abs(o.Bin); err == nil {
		o.Bin = abs
	}
	// ferry commands run in a scratch folder of their own: files they
	// write (--records, --out) land there and later commands read them.
	work, err := os.MkdirTemp("", "ferry-figures-")
	if err != nil {
		return nil, fmt.Errorf("figures: %w", err)
	}
	defer os.RemoveAll(work)
	start := time.Now()
	d := &Data{Set: s.Name, Quick: o.Quick, Repeats: o.Repeats, Date: start.UTC().Format(time.RFC3339), Machine: Probe()}
	for round := 1; round <= o.Repeats; round++ {
		for _, c := range s.Cmds {
			if (c.Text || c.Once || c.Go || c.Sh) && round > 1 {
				continue
			}
			r, err := runOne(ctx, c, round, o, work)
			if err != nil {
				return nil, err
			}
			d.Runs = append(d.Runs, r)
		}
	}
	d.Machine.LoadAfter = LoadAverage()
	d.RuntimeS = time.Since(start).Seconds()
	return d, nil
}

func runOne(ctx context.Context, c Cmd, round int, o Options, work string) (Run, error) {
	args := c.args(o.Quick)
	r := Run{Key: c.Key, Command: Command(args), Repeat: round}
	prog, full := o.Bin, append(append([]string(nil), args...), "--log-level", "warn")
	if !c.Text && !c.Go && !c.Sh {
		full = append(full, "--format", "json")
	}
	dir := work
	if c.Go {
		prog, full, r.Command, dir = "go", args, command("go", args), o.Root
	}
	if c.Sh {
		prog, full, r.Command, dir = "bash", []string{"-c", args[0]}, args[0], o.Root
	}
	if len(c.Env) > 0 {
		r.Command = strings.Join(c.Env, " ") + " " + r.Command
	}
	fmt.Fprintf(o.Log, "figures: %s (round %d): %s\n", c.Key, round, r.Command)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, prog, full...)
	cmd.Stdout, cmd.Stderr, cmd.Dir = &out, o.Log, dir
	if len(c.Env) > 0 {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	start := time.Now()
	err := cmd.Run()
	r.WallS = time.Since(start).Seconds()
	if err != nil && (c.Go || c.Sh) && ctx.Err() == nil && out.Len() > 0 {
		// A failed test is a figure too (its FAIL lines): keep it, say so.
		r.Text, r.Error = out.String(), err.Error()
		fmt.Fprintf(o.Log, "figures: %s: %s: %v (output kept)\n", c.Key, r.Command, err)
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("figures: %s: %s: %w", c.Key, r.Command, err)
	}
	if c.Text || c.Go || c.Sh {
		r.Text = out.String()
		return r, nil
	}
	if !json.Valid(out.Bytes()) {
		return r, fmt.Errorf("figures: %s: %s: output is not JSON", c.Key, r.Command)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, out.Bytes()); err != nil {
		return r, fmt.Errorf("figures: %s: %w", c.Key, err)
	}
	r.Output = compact.Bytes()
	return r, nil
}
