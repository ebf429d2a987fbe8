package poll

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	var n atomic.Int32
	if !Until(time.Minute, func() bool { return n.Add(1) >= 3 }) {
		t.Fatal("Until = false for a condition that holds on the 3rd check")
	}
	if got := n.Load(); got != 3 {
		t.Errorf("cond checked %d times, want 3: Until must stop once it holds", got)
	}
	if Until(0, func() bool { return false }) {
		t.Error("Until = true for a condition that never holds")
	}
}

// fakeTB records a Fatalf instead of ending the test.
type fakeTB struct {
	testing.TB
	failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
}

func TestWaitFor(t *testing.T) {
	var ok fakeTB
	WaitFor(&ok, time.Minute, "true", func() bool { return true })
	if ok.failed != "" {
		t.Errorf("WaitFor failed on a condition that holds: %q", ok.failed)
	}
	var late fakeTB
	WaitFor(&late, 0, "never", func() bool { return false })
	if got, want := late.failed, "timed out after 0s waiting for never"; got != want {
		t.Errorf("WaitFor on a condition that never holds: failed with %q, want %q", got, want)
	}
}
