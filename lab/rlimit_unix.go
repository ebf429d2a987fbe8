//go:build unix

package lab

import (
	"log/slog"
	"syscall"
)

// checkNoFile warns when the open-files limit is too low for concurrency
// calls: each holds a client socket, and an in-process mock a server one.
// (Go raises the soft limit to the hard one at start-up; this is the hard one.)
func checkNoFile(log *slog.Logger, concurrency int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if need := uint64(2*concurrency + 256); lim.Cur < need {
		log.Warn("open-files limit below 2 x concurrency: expect dial or accept errors (raise ulimit -n)",
			"limit", lim.Cur, "needed", need)
	}
}
