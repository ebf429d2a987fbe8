package faulttest

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"testing"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/internal/poison"
)

// TestPoisonDocumentPanics: one document among 10,000 panics the workload.
// The worker recovers per document and answers the batch with that
// document's error; it alone is reported, by index, 9,999 results are
// written and the job ends with ErrDocsFailed.
func TestPoisonDocumentPanics(t *testing.T) {
	r := rng(t)
	n, workers := 10_000, 2
	d := docs(n)
	bad := r.IntN(n)
	cfg := job(10, 20*time.Microsecond)
	cfg.Workload, cfg.Params.Args = poison.Name, poison.Args(d[bad], cfg.Workload)

	b := natstest.NewBroker(t, broker.Options{})
	pool(t, b.URL(), workers, false)
	nc := connect(t, b.URL(), "ferry-coordinator")
	l := newLedger(t, d, cfg.Params)
	st, err := run(context.Background(), t, nc, cfg, workers, &source{docs: d}, l, nil)
	v := l.verdict(bad)
	summary(t, "poison-panic", v, st, fmt.Sprintf("poison=%d err=%q", bad, err))
	if !errors.Is(err, coordinator.ErrDocsFailed) {
		t.Fatalf("err = %v, want ErrDocsFailed", err)
	}
	v.check(t, bad)
	if len(st.Failed) != 1 || st.Failed[0].Index != int64(bad) || !strings.Contains(st.Failed[0].Error, "panic") {
		t.Errorf("failed = %+v, want document %d with its panic", st.Failed, bad)
	}
	if got, want := st.Docs, int64(n-1); got != want {
		t.Errorf("docs written = %d, want %d", got, want)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("document %d", bad)) {
		t.Errorf("error %q does not name document %d", err, bad)
	}
}

// TestPoisonDocumentKillsWorker: one document makes its worker process exit
// (the FERRY_TEST_CRASH_ON hook, standing in for a segfaulting model). The
// batch times out, is retried, then halved until the document is alone;
// after MaxAttempts it is reported by index and every other document is
// written. Worker deaths are bounded by MaxAttempts per bisection level.
func TestPoisonDocumentKillsWorker(t *testing.T) {
	t.Parallel() // mostly waiting out deadlines: overlaps with the other waiting tests
	r := rng(t)
	n, workers := 5_000, 3
	if *long {
		n = 20_000
	}
	d := docs(n)
	bad := r.IntN(n)
	cfg := job(10, 20*time.Microsecond)
	cfg.TimeoutFloor = 300 * time.Millisecond // how soon a dead worker's batch is re-sent

	b := natstest.NewBroker(t, broker.Options{})
	p := pool(t, b.URL(), workers, true, "FERRY_TEST_CRASH_ON="+d[bad])
	nc := connect(t, b.URL(), "ferry-coordinator")
	l := newLedger(t, d, cfg.Params)
	st, err := run(context.Background(), t, nc, cfg, workers, &source{docs: d}, l, nil)
	v := l.verdict(bad)
	// Each attempt at a batch holding the document kills one worker: at most
	// MaxAttempts at each level of halving, from the whole batch down to one.
	levels := bits.Len(uint(cfg.BatchSize-1)) + 1
	bound := 3 * levels
	summary(t, "poison-crash", v, st, fmt.Sprintf("poison=%d worker_deaths=%d (bound %d) err=%q", bad, p.Restarts(), bound, err))
	if !errors.Is(err, coordinator.ErrDocsFailed) {
		t.Fatalf("err = %v, want ErrDocsFailed", err)
	}
	v.check(t, bad)
	if len(st.Failed) != 1 || st.Failed[0].Index != int64(bad) {
		t.Errorf("failed = %+v, want only document %d", st.Failed, bad)
	}
	if deaths := p.Restarts(); deaths < 3 || deaths > bound {
		t.Errorf("worker deaths = %d, want between MaxAttempts (3) and %d", deaths, bound)
	}
	if st.Splits == 0 {
		t.Errorf("splits = 0: the batch was never bisected")
	}
}
