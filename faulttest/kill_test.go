package faulttest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/internal/natstest"
)

// faultPoints picks k distinct input indices in [2%, 95%) of n, sorted.
func faultPoints(r *rand.Rand, n, k int) []int {
	lo, hi := n/50, n*95/100
	set := map[int]bool{}
	for len(set) < k {
		set[lo+r.IntN(hi-lo)] = true
	}
	var out []int
	for i := range set {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

// victim picks a random worker that is attached (answers discovery), so a
// kill lands on a worker that holds batches, not on one still starting.
func victim(r *rand.Rand, attached, running []int) int {
	var c []int
	for _, pid := range attached {
		if slices.Contains(running, pid) {
			c = append(c, pid)
		}
	}
	if len(c) == 0 {
		c = slices.Sorted(slices.Values(running))
	}
	if len(c) == 0 {
		return 0
	}
	return c[r.IntN(len(c))]
}

// TestSIGKILLWorkers: a 2,000-batch job while random workers are SIGKILLed
// (the pool restarts them). Every document is written exactly once, in
// order, with its own result; re-sent batches are bounded by what the
// killed workers could have held: kills x in-flight per worker.
func TestSIGKILLWorkers(t *testing.T) {
	t.Parallel() // mostly waiting out deadlines: overlaps with the other waiting tests
	r := rng(t)
	n, kills, workers := 20_000, 20, 4
	if *long {
		n, kills = 100_000, 100
	}
	d := docs(n)
	cfg := job(10, 20*time.Microsecond)
	cfg.TimeoutFloor = 500 * time.Millisecond // a killed worker's batches are re-sent after this

	b := natstest.NewBroker(t, broker.Options{})
	p := pool(t, b.URL(), workers, true)
	nc := connect(t, b.URL(), "ferry-coordinator")
	probe := connect(t, b.URL(), "probe")

	// Baseline: the same job on the same fleet with no faults, in this run.
	base, err := run(context.Background(), t, nc, cfg, workers, &source{docs: d}, newLedger(t, d, cfg.Params), nil)
	if err != nil {
		t.Fatalf("baseline job: %v", err)
	}

	points := faultPoints(r, n, kills)
	var killed []int
	src := &source{docs: d, at: func(i int) {
		for len(points) > 0 && points[0] == i {
			points = points[1:]
			if pid := victim(r, attachedPIDs(probe), p.PIDs()); pid > 0 && syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed = append(killed, pid)
			}
		}
	}}
	l := newLedger(t, d, cfg.Params)
	start := time.Now()
	st, err := run(context.Background(), t, nc, cfg, workers, src, l, nil)
	if err != nil {
		t.Fatalf("job: %v", err)
	}
	v := l.verdict()
	summary(t, "sigkill", v, st, fmt.Sprintf("kills=%d restarts=%d max_stall=%s baseline_wall=%s wall_ratio=%.2f",
		len(killed), p.Restarts(), l.maxStall(start).Round(time.Millisecond), base.Wall.Round(time.Millisecond), st.Wall.Seconds()/base.Wall.Seconds()))
	v.check(t)
	if got := len(killed); got < kills {
		t.Errorf("kills = %d, want %d", got, kills)
	}
	if got, bound := st.Batches, int64(n/cfg.BatchSize); got < bound {
		t.Errorf("batches = %d, want at least %d", got, bound)
	}
	// A split re-sends its documents once (in two halves), so it counts as
	// one re-execution, like a retry.
	if resent, bound := st.Retries+st.Splits, int64(len(killed)*cfg.InFlight); resent > bound {
		t.Errorf("re-sent batches = %d retries + %d splits, want at most kills x in-flight = %d", st.Retries, st.Splits, bound)
	}
	if st.Retries == 0 {
		t.Errorf("retries = 0 after %d kills: the kills did not land on busy workers", len(killed))
	}
}
