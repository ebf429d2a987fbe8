package faulttest

import (
	"context"
	"errors"
	"log/slog"
	"strings"
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
	cfg.TimeoutFloor = 5 * time.Second // no deadline should fire here

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
	var logs logBuffer
	st, err := run(ctx, t, nc, cfg, workers, src, l, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer func() {
		if t.Failed() {
			t.Logf("coordinator log:\n%s", logs.String())
		}
	}()
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
	// A retry before the cancel can be a noisy machine missing a deadline;
	// none may come from stopping.
	if n := failuresAfter(t, logs.String(), cancelled); n != 0 {
		t.Errorf("%d batches failed after the cancel: stopping made batches run twice", n)
	}
}

// failuresAfter counts the coordinator's debug lines for failed batches
// (timed out or failed) logged after since.
func failuresAfter(t testing.TB, log string, since time.Time) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "batch timed out") && !strings.Contains(line, "batch failed") {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			t.Fatalf("log line without a time: %q", line)
		}
		if at.After(since) {
			n++
		}
	}
	return n
}
