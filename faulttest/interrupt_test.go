package faulttest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/internal/natstest"
)

// TestInterruptFinishesInFlight: the coordinator's context is cancelled
// mid-job (what SIGTERM does to `ferry run`). Dispatch stops at once, the
// batches already at workers are answered and written within StopGrace,
// and the job returns the written prefix: nothing past it, nothing twice.
func TestInterruptFinishesInFlight(t *testing.T) {
	n, workers := 2_000, 2
	d := docs(n)
	cfg := job(10, 2*time.Millisecond) // 20 ms a batch: several are in flight at any time
	cfg.StopGrace = 10 * time.Second

	b := natstest.NewBroker(t, broker.Options{})
	pool(t, b.URL(), workers, false)
	nc := connect(t, b.URL(), "ferry-coordinator")
	l := newLedger(t, d, cfg.Params)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var atCancel int64
	var cancelled time.Time
	src := &source{docs: d, at: func(i int) {
		if i == n/2 {
			atCancel, cancelled = l.prefix(), time.Now()
			cancel()
		}
	}}
	st, err := run(ctx, t, nc, cfg, workers, src, l, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	final := l.prefix()
	v := l.verdict()
	t.Logf("interrupt: attempted=%d written_once=%d duplicated=%d unexpected=%d | prefix_at_cancel=%d prefix_after_grace=%d retries=%d stop_took=%s err=%q",
		v.Attempted, v.Completed, v.Duplicated, v.Unexpected, atCancel, final, st.Retries, time.Since(cancelled).Round(time.Millisecond), err)
	if v.Duplicated != 0 || v.Unexpected != 0 || v.Completed != int(final) || st.Prefix != final {
		t.Errorf("result set %s, stats prefix %d: want exactly the prefix [0, %d) once", v, st.Prefix, final)
	}
	if final <= atCancel {
		t.Errorf("prefix %d after the grace period, %d at cancel: batches in flight were not finished", final, atCancel)
	}
	if final >= int64(n) {
		t.Errorf("prefix %d: dispatch did not stop", final)
	}
	if st.Retries != 0 {
		t.Errorf("retries = %d: stopping made batches run twice", st.Retries)
	}
}
