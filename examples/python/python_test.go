package python

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrylab/ferry/examples/internal/exampletest"
	"github.com/ferrylab/ferry/internal/childtest"
	"github.com/ferrylab/ferry/report"
)

// python is the interpreter python.sh finds, or the test skips saying why.
func python(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("./python.sh").Output()
	if err != nil {
		var msg string
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Skipf("skipped: %s", strings.TrimSpace(msg+" "+err.Error()))
	}
	return strings.TrimSpace(string(out))
}

// TestWorkerInEveryModeMatchesProcessPoolExecutor runs worker.py as exec
// workers of a real ferry in serial, goroutines and processes modes (same
// vectors in each), then pool.py computes the same function through
// ProcessPoolExecutor and checks its vectors equal ferry's .npy.
func TestWorkerInEveryModeMatchesProcessPoolExecutor(t *testing.T) {
	py := python(t)
	if err := exec.Command(py, "-c", "import numpy").Run(); err != nil {
		t.Skipf("skipped: %s has no numpy (apt-get install python3-numpy) to compare the vectors", py)
	}
	ferry, cleanup, err := childtest.BuildFerry()
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	input, paras := exampletest.Paragraphs(t)
	npy := filepath.Join(t.TempDir(), "vecs.npy")
	worker, err := filepath.Abs("worker.py")
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := exampletest.Run(t, ferry, "run", "-q", "--format", "json", "--workers", "2", "--batch-size", "32",
		"--modes", "serial,goroutines,processes", "--workload", "exec", "--exec", py+" "+worker, "--input", input, "--out", npy)
	if code != 0 {
		t.Fatalf("ferry run: exit %d\n%s", code, stderr)
	}
	var r report.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	if !r.IdenticalResults || len(r.Modes) != 3 {
		t.Fatalf("identical results %v over %d modes", r.IdenticalResults, len(r.Modes))
	}
	for _, m := range r.Modes {
		if m.Docs != int64(len(paras)) || m.Failed != 0 {
			t.Errorf("%s: %d documents, %d failed", m.Mode, m.Docs, m.Failed)
		}
	}
	if _, ok := r.Modes[2].Stages["pipe"]; !ok {
		t.Errorf("processes mode has no pipe stage")
	}
	out, err := exec.Command(py, "pool.py", "--input", input, "--chunksizes", "1,16", "--workers", "2", "--serial", "--npy", npy).CombinedOutput()
	if err != nil {
		t.Fatalf("pool.py: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"identical_to"`) {
		t.Fatalf("pool.py did not compare its vectors with ferry's:\n%s", out)
	}
	t.Logf("ferry docs/s: serial %.0f, goroutines %.0f, processes %.0f; pool.py:\n%s",
		r.Modes[0].DocsPerS, r.Modes[1].DocsPerS, r.Modes[2].DocsPerS, out)
}

// TestWorkerDimParam: --param dim reaches the program in the args map.
func TestWorkerDimParam(t *testing.T) {
	py := python(t)
	ferry, cleanup, err := childtest.BuildFerry()
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	npy := filepath.Join(t.TempDir(), "vecs.npy")
	_, stderr, code := exampletest.Run(t, ferry, "run", "-q", "--modes", "processes", "--workers", "1", "--docs", "50",
		"--workload", "exec", "--exec", py+" worker.py", "--param", "dim=16", "--out", npy)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	b, err := os.ReadFile(npy)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b[:128]), "'shape': (50, 16)") {
		t.Errorf("npy header %q, want 50 rows of 16", b[:128])
	}
}
