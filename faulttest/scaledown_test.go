package faulttest

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/internal/poll"
)

// TestGracefulScaleDown: half the workers get SIGTERM mid-job. Each one
// stops taking batches (its micro service drains its subscription), finishes
// and answers the batches it holds, and exits; the coordinator's next send to
// it meets "no responders" and goes elsewhere without counting an attempt.
// No batch is executed twice because of it: 0 retries.
func TestGracefulScaleDown(t *testing.T) {
	r := rng(t)
	n, workers := 20_000, 4
	d := docs(n)
	cfg := job(10, 50*time.Microsecond)
	// A graceful stop loses nothing, so no deadline should fire; a long one
	// keeps a noisy machine's stall from passing for a re-execution.
	cfg.TimeoutFloor = 5 * time.Second

	b := natstest.NewBroker(t, broker.Options{})
	p := pool(t, b.URL(), workers, false)
	nc := connect(t, b.URL(), "ferry-coordinator")
	probe := connect(t, b.URL(), "probe")

	stopAt := n/4 + r.IntN(n/4)
	var stopped []int
	src := &source{docs: d, at: func(i int) {
		if i != stopAt {
			return
		}
		pids := attachedPIDs(probe)
		for range workers / 2 {
			pid := victim(r, pids, p.PIDs())
			if pid > 0 && syscall.Kill(pid, syscall.SIGTERM) == nil {
				stopped = append(stopped, pid)
				pids = slices.DeleteFunc(pids, func(x int) bool { return x == pid })
			}
		}
	}}
	l := newLedger(t, d, cfg.Params)
	st, err := run(context.Background(), t, nc, cfg, workers, src, l, nil)
	if err != nil {
		t.Fatalf("job: %v", err)
	}
	poll.WaitFor(t, 15*time.Second, "the stopped workers to exit", func() bool {
		return len(p.PIDs()) == workers-len(stopped)
	})
	v := l.verdict()
	summary(t, "scale-down", v, st, fmt.Sprintf("sigterm=%d", len(stopped)))
	v.check(t)
	if got := len(stopped); got != workers/2 {
		t.Fatalf("stopped %d workers, want %d", got, workers/2)
	}
	if st.Retries != 0 || st.Splits != 0 {
		t.Errorf("retries = %d, splits = %d: a graceful stop made batches run twice", st.Retries, st.Splits)
	}
}
