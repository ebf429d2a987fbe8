package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/sink"
	"github.com/ferrylab/ferry/workload"
)

// flaky fails the first attempt of every batch, reports the first send of
// batch 1 as never delivered, splits batch 2 once, and computes the rest.
type flaky struct {
	wl   workload.Workload
	mu   sync.Mutex
	seen map[uint64]int
}

func (f *flaky) Name() string { return "flaky" }

func (f *flaky) Run(ctx context.Context, q *coordinator.Queue) error {
	for {
		t, err := q.Next(ctx)
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.seen[t.Batch.ID]++
		n := f.seen[t.Batch.ID]
		f.mu.Unlock()
		switch {
		case t.Batch.ID == 1 && n == 1:
			q.Requeue(t)
		case t.Batch.ID == 2 && n == 1:
			q.Split(t)
		case n == 1:
			q.Fail(t, errors.New("flaky"))
		default:
			res := &proto.Result{BatchID: t.Batch.ID}
			if err := f.wl.Process(t.Batch.Docs, &res.Out); err != nil {
				return err
			}
			q.Complete(t, coordinator.Result{Res: res})
		}
	}
}

// TestObserveSeesEveryBatchEnd checks the Observe contract the metrics
// rely on: every sent batch ends in exactly one other event, and the
// documents of ok events add up to the job.
func TestObserveSeesEveryBatchEnd(t *testing.T) {
	const n = 95
	src := make([]string, n)
	for i := range src {
		src[i] = fmt.Sprintf("doc %d", i)
	}
	wl, err := workload.New("embed", workload.Params{Dim: 8})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	kinds := map[coordinator.EventKind]int{}
	okDocs := 0
	cfg := coordinator.Config{
		Workload: "embed", Params: workload.Params{Dim: 8}, BatchSize: 10, Workers: 2,
		Observe: func(e coordinator.Event) {
			mu.Lock()
			defer mu.Unlock()
			kinds[e.Kind]++
			if e.Kind == coordinator.EventOK {
				okDocs += e.Docs
			}
		},
	}
	st, err := coordinator.Run(context.Background(), cfg, corpus.Slice(src), &flaky{wl: wl, seen: map[uint64]int{}}, sink.Discard{})
	if err != nil {
		t.Fatal(err)
	}
	ends := 0
	for k, c := range kinds {
		if k != coordinator.EventSent {
			ends += c
		}
	}
	if got, want := ends, kinds[coordinator.EventSent]; got != want {
		t.Errorf("ending events = %d, sent = %d (%v)", got, want, kinds)
	}
	if okDocs != n || st.Docs != n {
		t.Errorf("ok docs = %d, report docs = %d, want %d", okDocs, st.Docs, n)
	}
	if kinds[coordinator.EventRequeue] != 1 || kinds[coordinator.EventSplit] != 1 {
		t.Errorf("requeue = %d, split = %d, want 1 each (%v)", kinds[coordinator.EventRequeue], kinds[coordinator.EventSplit], kinds)
	}
	if got, want := int64(kinds[coordinator.EventRetry]), st.Retries; got != want {
		t.Errorf("retry events = %d, report retries = %d", got, want)
	}
	if got, want := int64(kinds[coordinator.EventRequeue]), st.Requeues; got != want {
		t.Errorf("requeue events = %d, report requeues = %d", got, want)
	}
	if kinds[coordinator.EventRetry] == 0 {
		t.Errorf("no retry events: %v", kinds)
	}
}
