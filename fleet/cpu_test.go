package fleet

import (
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ferrylab/ferry/internal/poll"
)

// The clock finds a child and a grandchild: an exec program a worker
// started is counted with the worker.
func TestDescendantsAreFound(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("skipped: /proc/<pid>/task/*/children is Linux's")
	}
	cmd := exec.Command("/bin/sh", "-c", "sleep 30 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var grandchildren []int
	poll.WaitFor(t, 10*time.Second, "sh to start sleep", func() bool {
		grandchildren = childrenOf(cmd.Process.Pid)
		return len(grandchildren) > 0
	})
	if !slices.Contains(childrenOf(os.Getpid()), cmd.Process.Pid) {
		t.Errorf("childrenOf(self) lacks the child %d", cmd.Process.Pid)
	}
	t.Cleanup(func() {
		for _, pid := range grandchildren {
			if p, err := os.FindProcess(pid); err == nil {
				p.Kill()
			}
		}
	})
	if _, err := procCPU(grandchildren[0]); err != nil {
		t.Errorf("grandchild's CPU: %v", err)
	}
	if d, ok := (CPUClock{Descendants: true}).Now(); !ok || d <= 0 {
		t.Errorf("Now = %v, %v", d, ok)
	}
}

// The process CPU clock of another process reads what /proc counts in
// ticks, to the nanosecond: a busy child's agrees with its /proc figure
// within the ticks' step, and moves between two reads a tick apart.
func TestProcessClockMatchesProc(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("skipped: process CPU clocks by pid are Linux's")
	}
	cmd := exec.Command("/bin/sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	ticks := func() time.Duration {
		f, err := statFields(pid)
		if err != nil {
			t.Fatal(err)
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(ut+st) * 10 * time.Millisecond
	}
	poll.WaitFor(t, 10*time.Second, "the child to use 50 ms of CPU", func() bool { return ticks() >= 50*time.Millisecond })
	c0, ok := clockCPU(pid)
	p0 := ticks()
	if !ok {
		t.Fatal("no process CPU clock for a live child")
	}
	if c0 < p0-20*time.Millisecond || c0 > p0+20*time.Millisecond {
		t.Errorf("clock %v, /proc %v: more than two ticks apart", c0, p0)
	}
	poll.WaitFor(t, 10*time.Second, "the child's clock to move", func() bool {
		c, _ := clockCPU(pid)
		return c > c0
	})
	if _, ok := clockCPU(0); ok {
		t.Error("clockCPU(0) = ok, want no clock")
	}
}
