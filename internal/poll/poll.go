// Package poll waits in tests for a condition to hold, checking it every
// Interval until a deadline: the one waitFor of ferry's tests. It is for
// conditions with no signal to wait on (a child process gone, a metric
// risen, a log line written); where there is a channel, wait on that. It
// is not a retry helper for production code.
package poll

import (
	"testing"
	"time"
)

// Interval is how long Until sleeps between checks: short, so a test goes
// on soon after cond holds, and long enough that a cond which runs a
// command does not keep a core busy.
const Interval = 20 * time.Millisecond

// Until checks cond every Interval until it holds or d passes, and reports
// whether it held. It fails nothing, so goroutines other than the test's
// own (fault hooks) may call it.
func Until(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(Interval)
	}
	return true
}

// WaitFor checks cond every Interval until it holds, or fails tb with
// "timed out after d waiting for what" once d passes. Only the test's own
// goroutine may call it (it calls tb.Fatalf).
func WaitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	if !Until(d, cond) {
		tb.Fatalf("timed out after %s waiting for %s", d, what)
	}
}
