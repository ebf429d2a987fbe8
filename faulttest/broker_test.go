package faulttest

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/internal/poll"
)

// TestBrokerRestart: the broker is shut down mid-job and a new one started
// on the same port. Workers and coordinator reconnect (natsconn: unlimited
// reconnects), workers' micro subscriptions are re-registered, discovery
// finds them again, batches lost with the old broker are re-sent, and the
// job completes with nothing lost.
func TestBrokerRestart(t *testing.T) {
	r := rng(t)
	n, workers, restarts := 10_000, 3, 1
	if *long {
		n, restarts = 50_000, 5
	}
	d := docs(n)
	cfg := job(10, 20*time.Microsecond)
	cfg.TimeoutFloor = 500 * time.Millisecond

	b := natstest.NewBroker(t, broker.Options{})
	u, err := url.Parse(b.URL())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	p := pool(t, b.URL(), workers, true)
	nc := connect(t, b.URL(), "ferry-coordinator")
	probe := connect(t, b.URL(), "probe")

	points := faultPoints(r, n, restarts)
	var downAt, upAt []time.Time
	l := newLedger(t, d, cfg.Params)
	src := &source{docs: d, at: func(i int) {
		for len(points) > 0 && points[0] == i {
			points = points[1:]
			downAt = append(downAt, time.Now())
			b.Shutdown()
			b = natstest.NewBroker(t, broker.Options{Port: port})
			upAt = append(upAt, time.Now())
		}
	}}
	start := time.Now()
	st, err := run(context.Background(), t, nc, cfg, workers, src, l, nil)
	if err != nil {
		t.Fatalf("job: %v", err)
	}
	v := l.verdict()
	var recovery time.Duration // broker back up -> output moving again, worst case
	for _, up := range upAt {
		if w := l.firstWriteAfter(up); !w.IsZero() {
			recovery = max(recovery, w.Sub(up))
		}
	}
	summary(t, "broker-restart", v, st, fmt.Sprintf("restarts=%d recovery=%s max_stall=%s reconnects=%d worker_restarts=%d",
		len(upAt), recovery.Round(time.Millisecond), l.maxStall(start).Round(time.Millisecond), nc.Stats().Reconnects, p.Restarts()))
	v.check(t)
	if got := len(upAt); got != restarts {
		t.Errorf("broker restarts = %d, want %d", got, restarts)
	}
	if got := nc.Stats().Reconnects; got < uint64(restarts) {
		t.Errorf("coordinator reconnects = %d, want %d", got, restarts)
	}
	if got := p.Restarts(); got != 0 {
		t.Errorf("worker processes restarted %d times; a broker restart should not kill workers", got)
	}
	// Discovery still finds the whole fleet on the new broker.
	poll.WaitFor(t, 10*time.Second, "all workers registered on the new broker", func() bool {
		return len(attachedPIDs(probe)) == workers
	})
}
