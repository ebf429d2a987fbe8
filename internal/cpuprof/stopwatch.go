package cpuprof

import (
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Stopwatch sums the CPU a stretch of code takes on its own thread, by the
// thread's CPU clock (CLOCK_THREAD_CPUTIME_ID), exactly where sampling
// misses a share of a thread that runs in bursts (see Hz). The goroutine is
// locked to its thread from Begin to End, so the clock is its own. Two
// clock reads a stretch: about a microsecond, once per batch.
type Stopwatch struct {
	total atomic.Int64 // nanoseconds
}

// Begin starts a stretch; pass what it returns to End on the same goroutine.
func (s *Stopwatch) Begin() time.Duration {
	runtime.LockOSThread()
	return threadCPU()
}

// End ends the stretch Begin started.
func (s *Stopwatch) End(t0 time.Duration) {
	if d := threadCPU() - t0; d > 0 {
		s.total.Add(int64(d))
	}
	runtime.UnlockOSThread()
}

// Total is the CPU of every stretch so far; 0 for a nil Stopwatch.
func (s *Stopwatch) Total() time.Duration {
	if s == nil {
		return 0
	}
	return time.Duration(s.total.Load())
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
