package coordinator_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/internal/poll"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/worker"
	"github.com/ferrylab/ferry/workload"
	"github.com/nats-io/nats.go"
)

// holdAt is a Source that calls at before its last document.
type holdAt struct {
	corpus.Source
	n, read int
	at      func()
}

func (h *holdAt) Next() (corpus.Doc, error) {
	if h.read == h.n-1 {
		h.at()
	}
	h.read++
	return h.Source.Next()
}

// A worker that hangs in a batch still answers $SRV.INFO (micro's control
// subscriptions run apart from the batch handler). It must not be sent
// batches again until it answers one: until then it gets only an empty
// probe, queued behind the hang. Once released, it answers the probe and is
// attached again: with the other worker stopped, it finishes the job.
func TestHungWorkerIsNotReattachedUntilItAnswers(t *testing.T) {
	_, url := natstest.NewServer(t)
	release := make(chan struct{})
	var hungFirst atomic.Uint64 // ID of the batch the hung worker holds
	start := func(name string, hook func(*proto.Batch)) (stop func()) {
		w, err := worker.New(worker.Config{URL: url, Name: name, BeforeBatch: hook})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = w.Run(ctx) }()
		var once sync.Once
		stop = func() { once.Do(func() { cancel(); <-done }) }
		t.Cleanup(stop)
		return stop
	}
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	start("hung", func(b *proto.Batch) {
		if len(b.Docs) > 0 {
			hungFirst.CompareAndSwap(0, b.ID)
		}
		<-release
	})
	stopOther := start("other", nil)

	// The spy sees every batch sent, by subject.
	spy := natstest.Connect(t, url)
	codec, _ := proto.NewCodec(proto.CodecPacked, proto.Limits{})
	type sent struct {
		subject string
		id      uint64
		docs    int
	}
	var mu sync.Mutex
	var log []sent
	if _, err := spy.Subscribe(proto.WorkSubjectPrefix+".>", func(m *nats.Msg) {
		var b proto.Batch
		if codec.DecodeBatch(m.Data, &b) == nil {
			mu.Lock()
			log = append(log, sent{m.Subject, b.ID, len(b.Docs)})
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}

	var retries atomic.Int64
	cfg := coordinator.Config{
		Workload: "spin", Params: workload.Params{SpinCostNs: int64(2 * time.Millisecond)},
		BatchSize: 5, InFlight: 2, BatchTimeout: time.Second, WorkerWait: time.Minute,
		Observe: func(e coordinator.Event) {
			if e.Kind == coordinator.EventRetry {
				retries.Add(1)
			}
		},
	}
	n := 2000
	var released atomic.Int64 // batches sent before the release
	src := &holdAt{Source: corpus.Slice(texts(n)), n: n, at: func() {
		// Both of the hung worker's lanes have missed their deadline by
		// now (the other worker took ~4 s to get here). Release it, stop
		// the other: the last batch is the released worker's to do.
		if !poll.Until(time.Minute, func() bool { return retries.Load() >= int64(cfg.InFlight) }) {
			t.Error("the hung worker's lanes never missed their deadline")
		}
		mu.Lock()
		released.Store(int64(len(log)))
		mu.Unlock()
		close(release)
		stopOther()
	}}
	nc := natstest.Connect(t, url)
	be, err := coordinator.NewProcesses(nc, cfg, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := &orderSink{t: t}
	st, err := coordinator.Run(ctx, cfg, src, be, out)
	if err != nil {
		t.Fatalf("job: %v", err)
	}
	if out.written != int64(n) {
		t.Errorf("written %d of %d", out.written, n)
	}

	mu.Lock()
	defer mu.Unlock()
	hung := ""
	for _, s := range log {
		if s.id == hungFirst.Load() { // the first send of that batch; its retries went elsewhere
			hung = s.subject
			break
		}
	}
	var hungBatches, probes, after int
	for i, s := range log {
		switch {
		case s.subject != hung:
		case s.docs == 0:
			probes++
		case int64(i) < released.Load():
			hungBatches++
		default:
			after++
		}
	}
	t.Logf("hung worker %s: %d batches while hung, %d probes, %d batches after release; retries %d", hung, hungBatches, probes, after, st.Retries)
	if hungBatches != cfg.InFlight {
		t.Errorf("the hung worker was sent %d batches, want %d (one per lane, before it missed its deadline)", hungBatches, cfg.InFlight)
	}
	if probes == 0 {
		t.Error("the hung worker was never probed")
	}
	if after == 0 {
		t.Error("the released worker was not attached again")
	}
}
