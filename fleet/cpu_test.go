package fleet

import (
	"os"
	"os/exec"
	"runtime"
	"slices"
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
