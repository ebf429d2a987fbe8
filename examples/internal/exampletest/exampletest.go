// Package exampletest runs an example's own ferry binary for its tests:
// built from the example's folder, fed the real text of examples/testdata,
// through the real `run` path (embedded broker, worker processes of the
// same binary, every mode).
package exampletest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ferrylab/ferry/report"
)

// Build builds the example in the test's folder and returns its binary.
func Build(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "example")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Paragraphs writes the paragraphs of the license texts in
// examples/testdata, one per line with runs of spaces made one, to a file
// `run --input` reads, and returns its path and the paragraphs. Several
// are near-duplicates: GPL-1 and GPL-2, LGPL-2 and LGPL-2.1 share most.
func Paragraphs(t testing.TB) (string, []string) {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(here), "..", "..", "testdata")
	var paras []string
	for _, name := range []string{"GPL-1", "GPL-2", "LGPL-2", "LGPL-2.1"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range strings.Split(string(b), "\n\n") {
			if p = strings.Join(strings.Fields(p), " "); p != "" {
				paras = append(paras, p)
			}
		}
	}
	path := filepath.Join(t.TempDir(), "paragraphs.txt")
	if err := os.WriteFile(path, []byte(strings.Join(paras, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, paras
}

// Run runs bin with args and returns its stdout, stderr and exit code.
func Run(t testing.TB, bin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return stdout.String(), stderr.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return stdout.String(), stderr.String(), 0
}

// RunModes runs bin's `run` in serial, goroutines and processes modes with
// args, writing the results to a .jsonl file, checks that it succeeded and
// that every mode gave identical results, and returns each document's
// bytes (the data field) in input order.
func RunModes(t testing.TB, bin string, args ...string) [][]byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.jsonl")
	args = append([]string{"run", "-q", "--format", "json", "--workers", "2", "--modes", "serial,goroutines,processes", "--out", out}, args...)
	stdout, stderr, code := Run(t, bin, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d\n%s", args, code, stderr)
	}
	var r report.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, stdout)
	}
	if len(r.Modes) != 3 || !r.IdenticalResults {
		t.Fatalf("modes %d, identical results %v: want 3, true", len(r.Modes), r.IdenticalResults)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var rec struct{ Data string }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		b, err := base64.StdEncoding.DecodeString(rec.Data)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, b)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return docs
}

// AtMost30Lines fails t when the example has more than 30 lines of code
// (CodeLines): the goal of a workload of one's own.
func AtMost30Lines(t testing.TB) {
	t.Helper()
	if n := CodeLines(t); n > 30 {
		t.Errorf("the example has %d lines of code, want at most 30", n)
	}
}

// RefusesParam runs `run --workload name --param kv` and checks it exits
// 2 saying want: params are checked before any work.
func RefusesParam(t testing.TB, bin, name, kv, want string) {
	t.Helper()
	_, stderr, code := Run(t, bin, "run", "--workload", name, "--docs", "10", "--param", kv)
	if code != 2 || !strings.Contains(stderr, want) {
		t.Fatalf("--param %s: exit %d, %q; want 2 and %q", kv, code, stderr, want)
	}
}

// CodeLines counts the lines of user code in the Go files of the test's
// folder that are not tests: neither blank nor comment. It is how the
// examples count "from an empty folder to the first report".
func CodeLines(t testing.TB) int {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "//") {
				n++
			}
		}
	}
	return n
}
