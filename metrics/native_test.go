package metrics

import (
	"testing"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/worker"
	dto "github.com/prometheus/client_model/go"
)

// stageFamily gathers reg and returns the histogram of stage in the family
// name.
func stageFamily(t *testing.T, m interface {
	Gather() ([]*dto.MetricFamily, error)
}, name, stage string) *dto.Histogram {
	t.Helper()
	fams, err := m.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "stage" && l.GetValue() == stage {
					return mt.GetHistogram()
				}
			}
		}
	}
	t.Fatalf("no %s{stage=%q} gathered", name, stage)
	return nil
}

// TestStageHistogramsAreNative: the stage histograms expose native buckets
// (a schema and spans) for scrapers that read them, and classic buckets in
// factor-2 steps for those that do not.
func TestStageHistogramsAreNative(t *testing.T) {
	cm := NewCoordinator()
	var tm coordinator.Timing
	for i, d := range []time.Duration{90 * time.Microsecond, 100 * time.Microsecond, 3 * time.Millisecond} {
		tm[coordinator.StageCompute] = d
		tm[coordinator.StageQueue] = d / 2
		cm.Observe(coordinator.Event{Kind: coordinator.EventOK, Docs: 1 + i, Timing: tm})
	}
	wm := NewWorker(time.Now())
	wm.Observe(worker.Event{Docs: 1, Queue: time.Millisecond, Compute: 2 * time.Millisecond})

	for _, c := range []struct {
		name   string
		h      *dto.Histogram
		sample uint64
	}{
		{"coordinator compute", stageFamily(t, cm.Registry, "ferry_coordinator_stage_seconds", "compute"), 3},
		{"coordinator queue", stageFamily(t, cm.Registry, "ferry_coordinator_stage_seconds", "queue"), 3},
		{"worker queue", stageFamily(t, wm.Registry, "ferry_worker_stage_seconds", "queue"), 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := c.h
			if h.Schema == nil || h.GetSchema() < 2 {
				t.Errorf("schema = %v, want a native schema of at least 2 (factor 1.1 gives 3)", h.Schema)
			}
			if len(h.GetPositiveSpan()) == 0 || len(h.GetPositiveDelta()) == 0 {
				t.Errorf("positive spans %v deltas %v, want native buckets", h.GetPositiveSpan(), h.GetPositiveDelta())
			}
			if got := h.GetSampleCount(); got != c.sample {
				t.Errorf("sample count = %d, want %d", got, c.sample)
			}
			b := h.GetBucket()
			if got, want := len(b), len(stageBuckets); got != want {
				t.Fatalf("classic buckets = %d, want %d", got, want)
			}
			for i := 1; i < len(b); i++ {
				if r := b[i].GetUpperBound() / b[i-1].GetUpperBound(); r > 2.001 {
					t.Fatalf("classic bucket %d is %.1fx the one below, want at most 2x", i, r)
				}
			}
		})
	}
}
