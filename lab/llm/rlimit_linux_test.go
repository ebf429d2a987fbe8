package llm

import (
	"syscall"
	"testing"
)

// raiseNoFile lifts the soft open-files limit to the hard one: 5,000
// concurrent calls in one process hold 5,000 client and 5,000 server sockets,
// over many distributions' 1,024 soft default. Best effort; a failure is logged.
func raiseNoFile(tb testing.TB, need uint64) {
	tb.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		tb.Logf("getrlimit: %v", err)
		return
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			tb.Logf("setrlimit: %v", err)
		}
	}
	if lim.Cur < need {
		tb.Logf("open-files limit %d < %d needed: expect dial or accept errors", lim.Cur, need)
	}
}
