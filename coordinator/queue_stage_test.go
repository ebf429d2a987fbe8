package coordinator_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/worker"
	"github.com/ferrylab/ferry/workload"
)

// TestQueueIsNotTransport: one worker, two batches in flight (pipelining),
// a workload that holds each batch a known time (sleep). Every batch but
// the first waits in the worker behind the one before it; that wait must
// show up as the queue stage, measured on the worker's clock, and not in
// transport. The bounds are relative to the compute the worker measured,
// never a wall-time threshold.
func TestQueueIsNotTransport(t *testing.T) {
	_, url := natstest.NewServer(t)
	w, err := worker.New(worker.Config{URL: url, Name: "one"})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(wctx) }()
	t.Cleanup(func() { stop(); <-done })

	var mu sync.Mutex
	var ok []coordinator.Timing
	cfg := coordinator.Config{
		Workload: "sleep", Params: workload.Params{SpinCostNs: int64(4 * time.Millisecond), OutBytes: 8},
		BatchSize: 4, InFlight: 2, WorkerWait: time.Minute,
		Observe: func(e coordinator.Event) {
			if e.Kind == coordinator.EventOK {
				mu.Lock()
				ok = append(ok, e.Timing)
				mu.Unlock()
			}
		},
	}
	const n = 4 * 12 // 12 batches of 16 ms each
	nc := natstest.Connect(t, url)
	be, err := coordinator.NewProcesses(nc, cfg, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := coordinator.Run(ctx, cfg, corpus.Slice(texts(n)), be, &orderSink{t: t})
	if err != nil {
		t.Fatal(err)
	}
	if st.Docs != n || len(ok) != n/4 {
		t.Fatalf("%d docs in %d batches, want %d in %d", st.Docs, len(ok), n, n/4)
	}
	// With two in flight, every batch after the first is sent while the
	// one before it computes, so it waits most of that compute.
	var queued int
	for i, tm := range ok[1:] {
		prev := ok[i][coordinator.StageCompute]
		if tm[coordinator.StageQueue] >= prev/2 {
			queued++
		}
		if tm[coordinator.StageQueue] > 0 && tm[coordinator.StageTransport] > tm[coordinator.StageQueue]+prev {
			t.Errorf("batch %d: transport %v is over its queue %v and a compute %v: queueing left in it",
				i+1, tm[coordinator.StageTransport], tm[coordinator.StageQueue], prev)
		}
	}
	if queued < len(ok[1:])/2 {
		t.Errorf("%d of %d pipelined batches have a queue stage of half the compute before them, want most: %v",
			queued, len(ok)-1, stageOf(ok, coordinator.StageQueue))
	}
	q, tr, c := st.Stages[coordinator.StageQueue], st.Stages[coordinator.StageTransport], st.Stages[coordinator.StageCompute]
	if q.Mean < c.Mean/2 {
		t.Errorf("mean queue %v, want at least half the mean compute %v", q.Mean, c.Mean)
	}
	if tr.P50 >= q.P50 {
		t.Errorf("median transport %v, want below the median queue %v: the wait behind a batch is queue", tr.P50, q.P50)
	}
	// Overhead leaves queueing out: what is left is decode, encode and the hops.
	if o := st.Overhead(); o > 0.5 {
		t.Errorf("overhead %.2f counts the queue; compute is %v a batch, queue %v, transport %v", o, c.Mean, q.Mean, tr.Mean)
	}
}

func stageOf(ts []coordinator.Timing, s coordinator.Stage) []time.Duration {
	out := make([]time.Duration, 0, len(ts))
	for _, t := range ts {
		out = append(out, t[s])
	}
	return slices.Clip(out)
}
