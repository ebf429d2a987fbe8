package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/internal/natstest"
	poisonwl "github.com/ferrylab/ferry/internal/poison"
	"github.com/ferrylab/ferry/internal/poll"
	"github.com/ferrylab/ferry/sink"
	"github.com/ferrylab/ferry/worker"
	"github.com/ferrylab/ferry/workload"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestJobThroughRealWorkerCountsEveryDocument runs a job on a real worker
// over embedded NATS with both hooks set, one poisoned document included,
// and checks what the counters and the HTTP endpoints say.
func TestJobThroughRealWorkerCountsEveryDocument(t *testing.T) {
	if err := poisonwl.Register(); err != nil {
		t.Fatal(err)
	}
	_, url := natstest.NewServer(t)
	wm := NewWorker(time.Now())
	w, err := worker.New(worker.Config{URL: url, Observe: wm.Observe})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Serve("127.0.0.1:0", wm.Registry, w.Ready, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	base := "http://" + srv.Addr().String()
	if code, body := get(t, base+"/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("healthz before the worker runs = %d %q, want 503", code, body)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for w.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("worker not ready: %v", w.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, body := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz = %d %q, want 200", code, body)
	}

	const n, batch = 250, 20
	in := make([]string, n)
	for i := range in {
		in[i] = fmt.Sprintf("document %d about ferries and rivers", i)
	}
	poison := in[37]
	cm := NewCoordinator()
	cfg := coordinator.Config{
		Workload: poisonwl.Name, Params: workload.Params{Dim: 16, Args: poisonwl.Args(poison, "embed")},
		BatchSize: batch, Workers: 1, Observe: cm.Observe,
	}
	nc := natstest.Connect(t, url)
	backend, err := coordinator.NewProcesses(nc, cfg, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := coordinator.Run(context.Background(), cfg, corpus.Slice(in), backend, sink.Discard{})
	if !errors.Is(err, coordinator.ErrDocsFailed) {
		t.Fatalf("run: err = %v, want ErrDocsFailed for the poisoned document", err)
	}

	// The worker observes a batch after answering it: wait for the last
	// observation (all of it: batches, docs, stages) before reading.
	poll.WaitFor(t, 10*time.Second, "the worker to observe every batch", func() bool {
		fams, err := wm.Registry.Gather()
		if err != nil {
			return false
		}
		for _, f := range fams {
			if f.GetName() == "ferry_worker_stage_seconds" {
				for _, m := range f.GetMetric() {
					if m.GetLabel()[0].GetValue() == "encode" {
						return m.GetHistogram().GetSampleCount() == uint64(st.Batches)
					}
				}
			}
		}
		return false
	})
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"worker docs ok", testutil.ToFloat64(wm.docs.WithLabelValues("ok")), n - 1},
		{"worker docs failed", testutil.ToFloat64(wm.docs.WithLabelValues("failed")), 1},
		{"worker batches ok", testutil.ToFloat64(wm.batches.WithLabelValues("ok")), float64(st.Batches)},
		{"worker inflight", testutil.ToFloat64(wm.inflight), 0},
		{"coordinator docs ok", testutil.ToFloat64(cm.docs.WithLabelValues("ok")), float64(st.Docs)},
		{"coordinator docs failed", testutil.ToFloat64(cm.docs.WithLabelValues("failed")), 1},
		{"coordinator batches ok", testutil.ToFloat64(cm.batches.WithLabelValues("ok")), float64(st.Batches)},
		{"coordinator inflight", testutil.ToFloat64(cm.inflight), 0},
		{"coordinator retries", testutil.ToFloat64(cm.retries), float64(st.Retries)},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if st.Docs != n-1 {
		t.Errorf("report docs = %d, want %d", st.Docs, n-1)
	}
	if got := testutil.ToFloat64(wm.busy); got <= 0 {
		t.Errorf("worker busy seconds = %v, want > 0", got)
	}

	_, body := get(t, base+"/metrics")
	for _, want := range []string{
		fmt.Sprintf(`ferry_worker_docs_total{outcome="ok"} %d`, n-1),
		fmt.Sprintf(`ferry_worker_stage_seconds_count{stage="compute"} %d`, st.Batches),
		"ferry_worker_busy_ratio ",
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if got, want := testutil.CollectAndCount(cm.stage), int(coordinator.NumStages)-1; got != want {
		t.Errorf("coordinator stage series = %d, want one per stage but the exec pipe (%d)", got, want)
	}
}

func TestServeRefusesABusyAddress(t *testing.T) {
	a, err := Serve("127.0.0.1:0", NewCoordinator().Registry, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	if _, err := Serve(a.Addr().String(), NewCoordinator().Registry, nil, nil); err == nil {
		t.Errorf("second Serve on %s succeeded", a.Addr())
	}
}

// A forged result is counted on its own and is no step of a batch: the
// in-flight gauge does not move.
func TestCoordinatorCountsForgedResults(t *testing.T) {
	m := NewCoordinator()
	m.Observe(coordinator.Event{Kind: coordinator.EventSent})
	for range 3 {
		m.Observe(coordinator.Event{Kind: coordinator.EventForged})
	}
	if got := testutil.ToFloat64(m.forged); got != 3 {
		t.Errorf("ferry_coordinator_forged_discarded_total = %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.inflight); got != 1 {
		t.Errorf("in-flight batches = %v, want 1 (forgeries are not batches)", got)
	}
}
