package command

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylab/ferry/bridge"
	"github.com/ferrylab/ferry/internal/poll"
	"github.com/ferrylab/ferry/report"
)

// runJSON runs ferry with args and --format json and returns the report,
// whatever the exit code (a job with failed documents still reports).
func runJSON(t *testing.T, env []string, args ...string) (report.Report, int, string) {
	t.Helper()
	out, stderr, code := ferry(t, env, append(args, "-q", "--format", "json")...)
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("exit %d, report is not JSON: %v\n%s\nstderr: %s", code, err, out, stderr)
	}
	return r, code, stderr
}

// An exec program computing embed gives what embed compiled in gives, in
// every mode, and processes mode shows the pipe as its own stage.
func TestRunExecMatchesTheCompiledWorkload(t *testing.T) {
	common := []string{"run", "--docs", "600", "--batch-size", "50", "--workers", "2", "--dim", "32"}
	compiled, code, stderr := runJSON(t, nil, append(common, "--modes", "serial")...)
	if code != 0 {
		t.Fatalf("compiled: exit %d: %s", code, stderr)
	}
	exec, code, stderr := runJSON(t, nil, append(common, "--modes", "serial,goroutines,processes",
		"--workload", "exec", "--exec", ferryBin+" exec-serve --workload embed")...)
	if code != 0 {
		t.Fatalf("exec: exit %d: %s", code, stderr)
	}
	if !exec.IdenticalResults {
		t.Errorf("exec modes differ from each other")
	}
	for _, m := range exec.Modes {
		if m.Digest != compiled.Modes[0].Digest {
			t.Errorf("%s over exec: digest %s, compiled embed %s", m.Mode, m.Digest, compiled.Modes[0].Digest)
		}
	}
	p := exec.Modes[2]
	if _, ok := p.Stages["pipe"]; !ok || p.Mode != "processes" {
		t.Errorf("processes over exec lacks the pipe stage: %+v", p.Stages)
	}
	if _, ok := compiled.Modes[0].Stages["pipe"]; ok {
		t.Errorf("compiled embed has a pipe stage")
	}
}

// A program that dies on a document is a worker failure: the batch is
// retried, bisected down to the document, which alone fails; the program
// is started again each time. In-process lanes behave the same.
func TestRunExecProgramCrashIsRetriedAndBisected(t *testing.T) {
	in := filepath.Join(t.TempDir(), "docs.txt")
	var lines []string
	for i := range 120 {
		lines = append(lines, fmt.Sprintf("line %d of the input, with some words", i))
	}
	const bad = 77
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, code, stderr := runJSON(t, []string{bridge.EnvCrashOn + "=" + lines[bad]},
		"run", "--input", in, "--batch-size", "20", "--workers", "2", "--modes", "goroutines,processes",
		"--workload", "exec", "--exec", ferryBin+" exec-serve --workload spin", "--spin-cost", "1us",
		"--max-attempts", "2", "--timeout-floor", "2s")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (a document failed): %s", code, stderr)
	}
	for _, m := range r.Modes {
		if m.Failed != 1 || len(m.Failures) != 1 || m.Failures[0].Index != bad {
			t.Errorf("%s: failed %d %+v, want document %d alone", m.Mode, m.Failed, m.Failures, bad)
		}
		if m.Docs != int64(len(lines)-1) {
			t.Errorf("%s: %d documents written, want %d", m.Mode, m.Docs, len(lines)-1)
		}
		if m.Retries == 0 || m.Splits == 0 {
			t.Errorf("%s: retries %d, splits %d: the crash was not retried and bisected", m.Mode, m.Retries, m.Splits)
		}
	}
	if !strings.Contains(stderr, "exited") {
		t.Errorf("stderr does not say the program exited:\n%s", stderr)
	}
}

// Standalone roles: workers with --exec serve a coordinator that runs no
// program itself; their programs end with them.
func TestStandaloneExecWorkers(t *testing.T) {
	url := startBroker(t)
	workers := start(t, "worker", "--nats-url", url, "--procs", "2", "--log-level", "warn",
		"--exec", ferryBin+" exec-serve --workload embed")
	out, stderr, code := ferry(t, nil, "coordinator", "--nats-url", url, "--expect-workers", "2", "-q",
		"--docs", "300", "--dim", "16", "--workload", "exec", "--modes", "processes", "--format", "json")
	if code != 0 {
		t.Fatalf("coordinator exit %d: %s", code, stderr)
	}
	compiled, code, stderr := runJSON(t, nil, "run", "--docs", "300", "--dim", "16", "--modes", "serial")
	if code != 0 {
		t.Fatalf("compiled: exit %d: %s", code, stderr)
	}
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if m := r.Modes[0]; m.Docs != 300 || m.Digest != compiled.Modes[0].Digest {
		t.Errorf("exec workers: %d documents, digest %s; compiled embed %s", m.Docs, m.Digest, compiled.Modes[0].Digest)
	}
	var programs []int
	for _, w := range children(workers.Process.Pid) {
		programs = append(programs, children(w)...)
	}
	if len(programs) != 2 {
		t.Errorf("%d programs under the 2 workers, want one each", len(programs))
	}
	workers.Process.Signal(syscall.SIGTERM)
	poll.WaitFor(t, 15*time.Second, "the programs to exit with their workers", func() bool {
		return !slices.ContainsFunc(programs, alive)
	})
}

func TestParamErrorsNameTheParam(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"workload without params", []string{"--workload", "embed", "--param", "dim=3"}, `workload embed has no param "dim"`},
		{"not key=value", []string{"--workload", "exec", "--param", "dim"}, `param "dim": want key=value`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := ferry(t, nil, append([]string{"run", "--docs", "10"}, tc.args...)...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr, tc.want)
			}
		})
	}
}

func TestWorkloadsListsEveryWorkload(t *testing.T) {
	out, stderr, code := ferry(t, nil, "workloads")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, name := range []string{"embed", "chunk", "infer", "spin", "noop", "exec"} {
		if !strings.Contains(out, name+" ") {
			t.Errorf("workloads lacks %s:\n%s", name, out)
		}
	}
}
