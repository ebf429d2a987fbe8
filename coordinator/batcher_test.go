package coordinator

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/sink"
	"github.com/ferrylab/ferry/workload"
)

// timing builds one batch's stages: compute per document plus a fixed and a
// per-document overhead, all put in the encode stage.
func timing(docs int, perDoc, fixed, perDocOver time.Duration) Timing {
	var tm Timing
	tm[StageCompute] = perDoc * time.Duration(docs)
	tm[StageEncode] = fixed + perDocOver*time.Duration(docs)
	return tm
}

func TestAutoBatchConvergesToTheModel(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		perDoc, fixed, perDocOvr time.Duration
		target                   float64
	}{
		{"spin 100us, 300us fixed", 100 * time.Microsecond, 300 * time.Microsecond, 0, 0.05},
		{"embed-like 5us, 200us fixed, 1us per doc", 5 * time.Microsecond, 200 * time.Microsecond, time.Microsecond, 0.05},
		{"looser target", 100 * time.Microsecond, 300 * time.Microsecond, 0, 0.20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAutoBatch(4, 1<<20, 2, tc.target)
			a.batchTime = 0 // the overhead model alone
			// Vary the sizes a little, as splits and the tail do, so the
			// fit can tell the fixed part from the per-document part.
			for i := range 200 {
				n := a.Size(int64(i), -1) + i%3
				a.Observe(n, 0, timing(n, tc.perDoc, tc.fixed, tc.perDocOvr), 0)
			}
			want := float64(tc.fixed) * (1 - tc.target) / (tc.target * float64(tc.perDoc))
			got := float64(a.Size(0, -1))
			if math.Abs(got-want)/want > 0.10 {
				t.Errorf("size = %.0f, want %.0f within 10%%", got, want)
			}
			// At that size the fixed overhead is at the target against compute.
			share := float64(tc.fixed) / (float64(tc.fixed) + got*float64(tc.perDoc))
			if share > tc.target*1.1 {
				t.Errorf("fixed overhead share at size %.0f = %.3f, over the target %.2f", got, share, tc.target)
			}
		})
	}
}

func TestAutoBatchRespectsBoundsAndShrinksAtTheEnd(t *testing.T) {
	a := newAutoBatch(100, 64, 2, 0.05)
	if got, want := a.Size(0, -1), 64; got != want {
		t.Errorf("start size = %d, want the max %d", got, want)
	}
	for range 50 { // huge overhead: wants far more than the max
		a.Observe(64, 0, timing(64, time.Microsecond, time.Second, 0), 0)
	}
	if got, want := a.Size(0, -1), 64; got != want {
		t.Errorf("size = %d, want capped at %d", got, want)
	}
	// Guided tail: with 2 workers, 100 documents left -> ceil(100/4) = 25,
	// never below size/8 = 8, and never more than is left.
	for _, tc := range []struct {
		left int64
		want int
	}{{10_000, 64}, {256, 64}, {100, 25}, {20, 8}, {3, 3}} {
		if got := a.Size(0, tc.left); got != tc.want {
			t.Errorf("left=%d: size = %d, want %d", tc.left, got, tc.want)
		}
	}
	if steps := a.Steps(); len(steps) < 3 || steps[0].Size != 64 {
		t.Errorf("steps = %+v, want the start and the tail sizes", steps)
	}
}

func TestAutoBatchCountsQueueingAsFree(t *testing.T) {
	a := newAutoBatch(16, 1<<20, 2, 0.05)
	a.batchTime = 0 // the overhead model alone
	for i := range 100 {
		n := a.Size(0, -1)
		tm := timing(n, 100*time.Microsecond, 0, 0)
		// One batch in two waits behind another in the worker's queue.
		tm[StageTransport] = 200 * time.Microsecond
		if i%2 == 1 {
			tm[StageTransport] += tm[StageCompute]
		}
		a.Observe(n, 0, tm, 0)
	}
	// Only the 200us hop counts: 200 * 0.95 / (0.05 * 100) = 38.
	if got := a.Size(0, -1); got < 30 || got > 48 {
		t.Errorf("size = %d, want about 38 (queueing is not overhead)", got)
	}
}

func TestAutoBatchCountsTheWaitForABatch(t *testing.T) {
	// In-process lanes measure only compute; a 50us wait per batch (a slow
	// hand-off) is fixed overhead: 50 * 0.95 / (0.05 * 10) = 95.
	a := newAutoBatch(16, 1<<20, 2, 0.05)
	a.batchTime = 0 // the overhead model alone
	for range 100 {
		n := a.Size(0, -1)
		a.Observe(n, 0, timing(n, 10*time.Microsecond, 0, 0), 50*time.Microsecond)
	}
	if got := a.Size(0, -1); got < 85 || got > 110 {
		t.Errorf("size = %d, want about 95", got)
	}
}

func TestAutoBatchGrowsToTheBatchTime(t *testing.T) {
	// The overhead model wants 300 * 0.95 / (0.05 * 100) = 57 documents;
	// batches grow past it to 100 ms of compute, 1000 documents, and then
	// to no more than the largest batch.
	for _, tc := range []struct{ max, want int }{{1 << 20, 1000}, {600, 600}} {
		a := newAutoBatch(16, tc.max, 2, 0.05)
		for i := range 100 {
			n := a.Size(int64(i), -1)
			a.Observe(n, 0, timing(n, 100*time.Microsecond, 300*time.Microsecond, 0), 0)
		}
		if got := a.Size(0, -1); got < tc.want*9/10 || got > tc.want*11/10 {
			t.Errorf("max %d: size = %d, want about %d", tc.max, got, tc.want)
		}
	}
	// A huge per-batch overhead still sets a size above the batch time's.
	a := newAutoBatch(16, 1<<20, 2, 0.05)
	for i := range 100 {
		n := a.Size(int64(i), -1)
		a.Observe(n, 0, timing(n, 100*time.Microsecond, 20*time.Millisecond, 0), 0)
	}
	if got := a.Size(0, -1); got < 3400 || got > 4200 {
		t.Errorf("size = %d, want about 3800 (20 ms * 0.95 / (0.05 * 100 us))", got)
	}
}

func TestAutoBatchIgnoresEmptyObservations(t *testing.T) {
	a := newAutoBatch(16, 1024, 1, 0.05)
	a.Observe(0, 0, Timing{}, 0)
	a.Observe(10, 0, Timing{}, 0) // no compute measured
	if got := a.Size(0, -1); got != 16 {
		t.Errorf("size = %d, want the start size 16 until something is measured", got)
	}
}

func docs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "document number " + string(rune('a'+i%26)) + " of the auto batch test " + string(rune('A'+i/26%26))
	}
	return out
}

func TestRunAutoBatchSameResultsAsFixed(t *testing.T) {
	ctx := context.Background()
	in := docs(3000)
	cfg := Config{Workload: "spin", Params: workload.Params{SpinCostNs: 2000}, Workers: 2, BatchSize: 50}
	run := func(cfg Config) *Stats {
		t.Helper()
		b, err := NewLocal(ModeGoroutines, 2, "")
		if err != nil {
			t.Fatal(err)
		}
		st, err := Run(ctx, cfg, corpus.Slice(in), b, sink.Discard{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	fixed := run(cfg)
	cfg.AutoBatch = true
	auto := run(cfg)
	if auto.Digest != fixed.Digest || auto.Docs != 3000 {
		t.Errorf("auto: %d docs, digest %s; fixed: digest %s", auto.Docs, auto.Digest, fixed.Digest)
	}
	if fixed.AutoBatch || len(fixed.BatchSizes) != 0 {
		t.Errorf("fixed run reports auto sizes: %+v", fixed.BatchSizes)
	}
	if !auto.AutoBatch || len(auto.BatchSizes) < 2 {
		t.Fatalf("auto run traced sizes %+v, want the start and at least one change", auto.BatchSizes)
	}
	if s := auto.BatchSizes; s[0].First != 0 || s[0].Size != 50 {
		t.Errorf("first step = %+v, want 50 from document 0", s[0])
	}
	for _, st := range auto.BatchSizes {
		if left := 3000 - st.First; st.Size < 1 || int64(st.Size) > max(left, 1) || st.Size > 1024 {
			t.Errorf("step %+v: size outside 1..min(left=%d, 1024)", st, left)
		}
	}
}

func TestAutoBatchCapsGrowthByBytes(t *testing.T) {
	// 100 ms of compute would be 10,000 documents of 10 us; at 2 KiB of
	// text and result per document, 512 KiB holds 256 of them.
	a := newAutoBatch(16, 1<<20, 2, 0.05)
	for i := range 100 {
		n := a.Size(int64(i), -1)
		a.Observe(n, 2048*n, timing(n, 10*time.Microsecond, 10*time.Microsecond, 0), 0)
	}
	if got := a.Size(0, -1); got < 230 || got > 290 {
		t.Errorf("size = %d, want about 256 (512 KiB at 2 KiB per document)", got)
	}
	// The overhead model still wins when it wants more: 1 ms fixed at 10 us
	// per document needs 1900 documents for 5%.
	a = newAutoBatch(16, 1<<20, 2, 0.05)
	for i := range 100 {
		n := a.Size(int64(i), -1)
		a.Observe(n, 2048*n, timing(n, 10*time.Microsecond, time.Millisecond, 0), 0)
	}
	if got := a.Size(0, -1); got < 1700 || got > 2100 {
		t.Errorf("size = %d, want about 1900 (the overhead target over the byte cap)", got)
	}
}

// Given the CPU of one batch's hop, auto holds that under the target, not
// the stage times' fixed part: stages full of waiting (an idle core's
// broker hop) move nothing, and the size converges on BatchCPU(1-T)/(T c).
func TestAutoBatchHoldsTheHopCPUUnderTheTarget(t *testing.T) {
	const (
		perDoc  = 5 * time.Microsecond
		hopCPU  = 150 * time.Microsecond // what every batch costs in CPU
		waiting = 3 * time.Millisecond   // what its stages took, mostly waiting
		target  = 0.05
	)
	a := newBatcher(Config{AutoBatch: true, BatchSize: 16, MaxBatchSize: 1 << 20, Workers: 2, OverheadTarget: target, BatchCPU: hopCPU}).(*autoBatch)
	a.batchTime = 0 // the overhead model alone
	for i := range 200 {
		n := a.Size(int64(i), -1) + i%3
		a.Observe(n, 0, timing(n, perDoc, waiting, 0), 0)
	}
	want := float64(hopCPU) * (1 - target) / (target * float64(perDoc))
	got := float64(a.Size(0, -1))
	if math.Abs(got-want)/want > 0.15 { // the size holds while the model is within 15% of it
		t.Errorf("size = %.0f, want the hop CPU's %.0f within 15%% (the stage times alone give %.0f)",
			got, want, float64(waiting)*(1-target)/(target*float64(perDoc)))
	}
}
