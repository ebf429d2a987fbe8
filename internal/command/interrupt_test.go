package command

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylab/ferry/internal/poll"
)

// TestInterruptWritesPrefix: SIGTERM on `ferry run` mid-job stops dispatch,
// lets the batches in flight finish (stop_grace), keeps what was written as
// <out>.partial, a valid file holding exactly the written prefix (--out
// itself is not created: only a finished run writes it), prints one line
// saying so and exits 130.
func TestInterruptWritesPrefix(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		args []string
	}{
		{"jsonl", "out.jsonl", []string{"--workload", "spin", "--spin-cost", "50us"}},
		{"npy", "out.npy", []string{"--workload", "embed", "--doc-words", "20"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), tc.file)
			args := append([]string{"run", "-q", "--modes", "processes", "--workers", "2", "--docs", "10000000",
				"--batch-size", "50", "--stop-grace", "5s", "--log-level", "warn", "--out", out}, tc.args...)
			cmd := exec.Command(ferryBin, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			poll.WaitFor(t, 60*time.Second, "results in --out's temporary file", func() bool {
				tmp, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "."+tc.file+".tmp-*"))
				fi, err := os.Stat(strings.Join(tmp, ""))
				return len(tmp) == 1 && err == nil && fi.Size() > 1<<20
			})
			cmd.Process.Signal(syscall.SIGTERM)
			err := cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 130 {
				t.Fatalf("exit = %v, want code 130; stderr %s", err, stderr.String())
			}
			line := strings.TrimSpace(stderr.String())
			m := regexp.MustCompile(`interrupted after (\d+) documents \(input \[0, (\d+)\) written`).FindStringSubmatch(line)
			if m == nil || strings.Contains(line, "\n") {
				t.Fatalf("stderr = %q, want one line saying how many documents were written", line)
			}
			n, _ := strconv.Atoi(m[1])
			if n == 0 || m[1] != m[2] {
				t.Fatalf("written %s, prefix %s: want the same, non-zero", m[1], m[2])
			}
			if !strings.Contains(stdout.String(), "interrupted") {
				t.Errorf("report on stdout does not show the interruption:\n%s", stdout.String())
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("%s exists after an interrupted run", out)
			}
			if !strings.Contains(line, out+".partial") {
				t.Errorf("stderr %q does not name the partial output", line)
			}
			switch tc.name {
			case "jsonl":
				checkJSONLPrefix(t, out+".partial", n)
			case "npy":
				checkNPYRows(t, out+".partial", n, 384)
			}
		})
	}
}

// checkJSONLPrefix checks that path holds records for indices 0..n-1, in order.
func checkJSONLPrefix(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	i := 0
	for sc.Scan() {
		var rec struct {
			Index int    `json:"index"`
			Data  string `json:"data"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("line %d is not JSON (%v): %q", i+1, err, sc.Text())
		}
		if rec.Index != i || rec.Data == "" {
			t.Fatalf("line %d = %+v, want index %d with data", i+1, rec, i)
		}
		i++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if i != n {
		t.Errorf("%s holds %d records, want the %d written", path, i, n)
	}
}

// checkNPYRows checks that path is a complete .npy of n rows of dim float32.
func checkNPYRows(t *testing.T, path string, n, dim int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(b), 128+n*dim*4; got != want {
		t.Errorf("npy size = %d, want %d for %d rows", got, want, n)
	}
	if len(b) < 128 || !bytes.Contains(b[:128], []byte(fmt.Sprintf("'shape': (%d, %d)", n, dim))) {
		t.Errorf("npy header = %q, want shape (%d, %d)", b[:min(len(b), 128)], n, dim)
	}
}
