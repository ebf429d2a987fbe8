package faulttest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrylab/ferry/internal/poll"
	"github.com/ferrylab/ferry/internal/spawn"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/nats-io/nats.go"
)

// pingCounter counts discovery requests ($SRV.INFO or $SRV.PING) on the broker.
func pingCounter(t testing.TB, nc *nats.Conn) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	sub, err := nc.Subscribe("$SRV.>", func(*nats.Msg) { n.Add(1) }) // PING or INFO: only coordinators ask
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &n
}

// TestNoWorkersWaitsThenResumes: the coordinator starts with no worker
// attached. It says so once, pings at a bounded rate while it waits, and
// starts when workers arrive. Mid-job every worker goes away; it says so
// once, waits, and resumes when a new fleet attaches. Nothing is lost.
func TestNoWorkersWaitsThenResumes(t *testing.T) {
	n, workers := 6_000, 2
	d := docs(n)
	cfg := job(10, 20*time.Microsecond)
	cfg.WorkerWait = time.Minute

	b := natstest.NewBroker(t, broker.Options{})
	nc := connect(t, b.URL(), "ferry-coordinator")
	probe := connect(t, b.URL(), "probe")
	pings := pingCounter(t, probe)
	var logs logBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))

	var first atomic.Pointer[spawn.Pool]
	var second *spawn.Pool
	var goneAt time.Time
	var pingsWhileGone int64
	var gone time.Duration
	src := &source{docs: d, at: func(i int) {
		if i != n/2 {
			return
		}
		// Take the whole fleet away, let the coordinator notice and wait,
		// then bring a new fleet.
		first.Load().Stop()
		goneAt = time.Now()
		before := pings.Load()
		if !poll.Until(30*time.Second, func() bool { return strings.Contains(logs.String(), "no workers attached; waiting") }) {
			t.Errorf("the coordinator never said it has no workers")
		}
		poll.Until(30*time.Second, func() bool { return pings.Load()-before >= 5 })
		pingsWhileGone, gone = pings.Load()-before, time.Since(goneAt)
		second = pool(t, b.URL(), workers, false)
	}}

	l := newLedger(t, d, cfg.Params)
	done := make(chan struct{})
	var st *coordinator.Stats
	var err error
	start := time.Now()
	go func() { // owned: the test waits on done below
		defer close(done)
		st, err = run(context.Background(), t, nc, cfg, workers, src, l, log)
	}()
	poll.WaitFor(t, 30*time.Second, "a few discovery rounds with no workers", func() bool { return pings.Load() >= 5 })
	waited, pingsBefore := time.Since(start), pings.Load()
	first.Store(pool(t, b.URL(), workers, false))
	<-done
	if err != nil {
		t.Fatalf("job: %v\nlog:\n%s", err, logs.String())
	}
	v := l.verdict()
	summary(t, "no-workers", v, st, fmt.Sprintf("start_wait=%s pings=%d (%.1f/s) gone_wait=%s pings=%d (%.1f/s)",
		waited.Round(time.Millisecond), pingsBefore, float64(pingsBefore)/waited.Seconds(),
		gone.Round(time.Millisecond), pingsWhileGone, float64(pingsWhileGone)/gone.Seconds()))
	v.check(t)
	out := logs.String()
	for _, tc := range []struct {
		msg  string
		want int
	}{
		{`msg="waiting for workers" attached=0`, 1}, // at start, said once while none attached
		{"no workers attached; waiting", 1},         // mid-job, said once
		{"workers attached again; resuming", 1},
	} {
		if got := strings.Count(out, tc.msg); got != tc.want {
			t.Errorf("log says %q %d times, want %d; log:\n%s", tc.msg, got, tc.want, out)
		}
	}
	// Never spinning: discovery is paced at a few pings a second.
	for _, w := range []struct {
		name  string
		pings int64
		over  time.Duration
	}{{"at start", pingsBefore, waited}, {"mid-job", pingsWhileGone, gone}} {
		if rate := float64(w.pings) / w.over.Seconds(); rate > 8 {
			t.Errorf("%s: %d pings in %s = %.1f/s, want at most 8/s", w.name, w.pings, w.over, rate)
		}
	}
	if second == nil {
		t.Fatal("the second fleet never started")
	}
}
