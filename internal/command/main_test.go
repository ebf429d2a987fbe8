package command

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylab/ferry/internal/childtest"
	"github.com/ferrylab/ferry/internal/poll"
	"github.com/ferrylab/ferry/report"
)

// ferryBin is the ferry binary built once for the tests that need real
// worker processes.
var ferryBin string

func TestMain(m *testing.M) {
	bin, cleanup, err := childtest.BuildFerry()
	if err != nil {
		panic(err)
	}
	ferryBin = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// ferry runs the binary to completion and returns stdout, stderr and the exit code.
func ferry(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ferryBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ferry %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

func TestRunAllModesIdentical(t *testing.T) {
	out, stderr, code := ferry(t, nil, "run", "-q", "--docs", "700", "--batch-size", "50", "--workers", "2",
		"--modes", "serial,goroutines,gil,codec,processes", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out)
	}
	if !r.IdenticalResults {
		t.Errorf("identical_results = false")
	}
	if got, want := len(r.Modes), 5; got != want {
		t.Fatalf("modes = %d, want %d", got, want)
	}
	for _, m := range r.Modes {
		if got, want := m.Docs, int64(700); got != want {
			t.Errorf("%s: docs = %d, want %d", m.Mode, got, want)
		}
		if m.Digest == "" || m.Digest != r.Modes[0].Digest {
			t.Errorf("%s: digest %q differs from serial %q", m.Mode, m.Digest, r.Modes[0].Digest)
		}
	}
	p := r.Modes[4]
	if p.Mode != "processes" || p.Workers != 2 || p.BytesOut == 0 || p.BytesIn == 0 {
		t.Errorf("processes mode = %+v", p)
	}
	for _, st := range []string{"encode", "transport", "worker_decode", "compute", "worker_encode", "decode"} {
		if _, ok := p.Stages[st]; !ok {
			t.Errorf("processes mode lacks stage %s", st)
		}
	}
}

func TestRunWritesNPYInInputOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vecs.npy")
	_, stderr, code := ferry(t, nil, "run", "-q", "--docs", "300", "--batch-size", "7", "--modes", "processes", "--out", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(b), 128+300*384*4; got != want {
		t.Fatalf("npy size = %d, want %d", got, want)
	}
	if !bytes.Contains(b[:128], []byte("'shape': (300, 384)")) {
		t.Errorf("npy header = %q", b[:128])
	}
}

func TestInvalidConfigExitsTwoNamingTheKey(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(cfg, []byte("batch_sise: 10\n"), 0o644)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		key  string
	}{
		{"batch size zero", nil, []string{"run", "--batch-size", "0"}, "batch_size=0"},
		{"negative workers", nil, []string{"run", "--workers", "-1"}, "workers=-1"},
		{"unknown mode", nil, []string{"run", "--modes", "serial,turbo"}, "modes="},
		{"unknown workload env", []string{"FERRY_WORKLOAD=nope"}, []string{"run"}, "workload=nope"},
		{"unreachable nats", nil, []string{"coordinator", "--nats-url", "nats://127.0.0.1:1"}, "nats_url="},
		{"bad number in env", []string{"FERRY_BATCH_SIZE=ten"}, []string{"run"}, "batch_size"},
		{"unknown key in file", nil, []string{"run", "--config", cfg}, "batch_sise"},
		{"unknown flag", nil, []string{"run", "--batchsize", "3"}, "batchsize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := ferry(t, tc.env, tc.args...)
			if code != 2 {
				t.Errorf("exit code = %d, want 2 (stderr %q)", code, stderr)
			}
			if !strings.Contains(stderr, tc.key) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Errorf("stderr = %q, want one line naming %q", stderr, tc.key)
			}
		})
	}
}

func TestEmptyInputSaysSo(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "empty.txt")
	os.WriteFile(empty, nil, 0o644)
	_, stderr, code := ferry(t, nil, "run", "-q", "--modes", "serial", "--input", empty)
	if code == 0 || !strings.Contains(stderr, "no documents") {
		t.Errorf("exit %d, stderr %q; want an error saying the input has no documents", code, stderr)
	}
}

// children lists the PIDs whose parent is pid.
func children(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, c)
		}
	}
	return out
}

func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

// devShm lists /dev/shm (nil where there is none).
func devShm(t *testing.T) []string {
	t.Helper()
	ents, _ := os.ReadDir("/dev/shm")
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestNoOrphanWorkers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sig   syscall.Signal
		plane string
	}{
		{"SIGKILL", syscall.SIGKILL, "nats"},
		{"SIGINT", syscall.SIGINT, "nats"},
		{"SIGTERM", syscall.SIGTERM, "nats"},
		{"SIGKILL shm", syscall.SIGKILL, "shm"},
		{"SIGTERM shm", syscall.SIGTERM, "shm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shmBefore := devShm(t)
			cmd := exec.Command(ferryBin, "run", "-q", "--modes", "processes", "--workers", "2", "--docs", "100000000", "--data-plane", tc.plane)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			var kids []int
			poll.WaitFor(t, 30*time.Second, "two worker processes", func() bool {
				kids = children(cmd.Process.Pid)
				return len(kids) >= 2
			})
			time.Sleep(300 * time.Millisecond) // let the job get going: this is a scenario, not a wait
			if tc.plane == "shm" {
				poll.WaitFor(t, 30*time.Second, "both workers to map their shared memory", func() bool {
					n := 0 // the echo is a child too, without any
					for _, k := range children(cmd.Process.Pid) {
						if b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(k), "maps")); strings.Contains(string(b), "memfd:ferry-shm") {
							n++
						}
					}
					return n >= 2
				})
			}
			cmd.Process.Signal(tc.sig)
			err := cmd.Wait()
			poll.WaitFor(t, 15*time.Second, "workers to exit", func() bool {
				for _, k := range kids {
					if alive(k) {
						return false
					}
				}
				return true
			})
			// memfd regions have no name: nothing is left in /dev/shm, and
			// they are freed with the last process that held them.
			if after := devShm(t); !slices.Equal(after, shmBefore) {
				t.Errorf("/dev/shm holds %v after the run, %v before", after, shmBefore)
			}
			if tc.sig == syscall.SIGKILL {
				return
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 130 {
				t.Errorf("exit = %v, want code 130; stderr %s", err, stderr.String())
			}
			if !strings.Contains(stderr.String(), "interrupted") {
				t.Errorf("stderr %q does not say the run was interrupted", stderr.String())
			}
		})
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs the binary in the background until the test ends.
func start(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(ferryBin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return cmd
}

// startBroker runs `ferry broker` on a free port until the test ends and
// returns its URL once it listens.
func startBroker(t *testing.T) string {
	t.Helper()
	port := freePort(t)
	start(t, "broker", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--http-port", "0", "--log-level", "warn")
	poll.WaitFor(t, 10*time.Second, "the broker to listen", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return fmt.Sprintf("nats://127.0.0.1:%d", port)
}

// The roles as separate processes: a standalone broker, a worker command
// supervising two worker processes, and a coordinator that waits for them.
func TestBrokerWorkerCoordinatorRoles(t *testing.T) {
	url := startBroker(t)
	workers := start(t, "worker", "--nats-url", url, "--procs", "2", "--log-level", "warn")
	out, stderr, code := ferry(t, nil, "coordinator", "--nats-url", url, "--expect-workers", "2", "-q",
		"--docs", "500", "--modes", "serial,processes", "--format", "json")
	if code != 0 {
		t.Fatalf("coordinator exit %d: %s", code, stderr)
	}
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("report: %v", err)
	}
	if !r.IdenticalResults || len(r.Modes) != 2 || r.Modes[1].Workers != 2 || r.Modes[1].Docs != 500 {
		t.Errorf("report = %+v", r.Modes)
	}
	kids := children(workers.Process.Pid)
	if got, want := len(kids), 2; got != want {
		t.Errorf("ferry worker --procs 2 has %d children, want %d", got, want)
	}
	// SIGTERM on the supervisor stops its children too.
	workers.Process.Signal(syscall.SIGTERM)
	poll.WaitFor(t, 15*time.Second, "worker children to exit", func() bool {
		for _, k := range kids {
			if alive(k) {
				return false
			}
		}
		return true
	})
}

func TestCoordinatorSaysWhenWorkersAreMissing(t *testing.T) {
	url := startBroker(t)
	_, stderr, code := ferry(t, nil, "coordinator", "--nats-url", url, "--expect-workers", "1", "--worker-wait", "1s", "-q", "--docs", "10")
	if code == 0 || !strings.Contains(stderr, "0 of 1 expected workers") {
		t.Errorf("exit %d, stderr %q; want a clear message about missing workers", code, stderr)
	}
}
