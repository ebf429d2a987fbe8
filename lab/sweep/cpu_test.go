package sweep

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ferrylab/ferry/coordinator"
)

// withCPU gives recs CPU per document from a per-batch CPU model
// cpu(b) = a + c*b per mode, with a noise of +-noise of its own per run:
// CPU time is what other load moves little.
func withCPU(recs []Record, ag, cg, ap, cp, noise float64) []Record {
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range recs {
		r := &recs[i]
		a, c := ag, cg
		if r.Mode == coordinator.ModeProcesses {
			a, c = ap, cp
		}
		b := float64(r.BatchSize)
		if b == 0 {
			b = 900
		}
		r.CPUus = (a + c*b) / b * (1 + noise*(2*rng.Float64()-1))
	}
	return recs
}

// TestCPUBreakEven: with throughput swinging 5% from run to run and CPU
// per document 1%, the CPU break-even lands on its model's crossing with a
// narrow interval, drives the recommendation, and is flagged as
// disagreeing with the throughput one (whose model crosses elsewhere).
func TestCPUBreakEven(t *testing.T) {
	// CPU: (100b) / (2000 + 101b) = 0.95 at b = 1900 / 4.05 = 469.
	recs := withCPU(modelRecords(40, 100, 200, 101, 0.05, 5), 0, 100, 2000, 101, 0.01)
	res := Analyze(recs, 0.05, 1)
	if len(res.BreakEvens) != 1 {
		t.Fatalf("break-evens = %d, want 1", len(res.BreakEvens))
	}
	be := res.BreakEvens[0]
	c := be.CPU
	if c == nil {
		t.Fatal("no CPU break-even although every record has CPU")
	}
	if want := 1900 / 4.05; math.Abs(c.Predicted-want) > 0.1*want {
		t.Errorf("CPU predicted = %.1f, want %.1f within 10%%", c.Predicted, want)
	}
	if lo, hi := c.PredictedCI[0], c.PredictedCI[1]; lo <= 0 || hi <= 0 || lo > c.Predicted || c.Predicted > hi || hi/lo > 1.5 {
		t.Errorf("CPU predicted %.1f, 90%% interval %v: want a finite interval around it, narrower than 1.5x", c.Predicted, c.PredictedCI)
	}
	if c.Recommended == 0 || be.BatchSize() != c.Recommended {
		t.Errorf("batch size = %d, want the CPU recommendation %d", be.BatchSize(), c.Recommended)
	}
	if want := 2000 * 0.95 / (0.05 * 101); math.Abs(c.Amortized-want) > 0.1*want || c.AmortizedCI[0] <= 0 || c.AmortizedCI[1] < c.AmortizedCI[0] {
		t.Errorf("amortized = %.1f, interval %v, want %.1f within 10%% with an interval", c.Amortized, c.AmortizedCI, want)
	}
	if c.FromAmortized {
		t.Error("recommended from the amortized size although the CPU break-even is reachable")
	}
	if len(c.Ratios) != 6 {
		t.Errorf("CPU ratios at %d sizes, want 6", len(c.Ratios))
	}
	if !be.Disagree {
		t.Errorf("throughput break-even %.1f %v and CPU %.1f %v: want them flagged as disagreeing", be.Predicted, be.PredictedCI, c.Predicted, c.PredictedCI)
	}
}

// TestCPUBreakEvenAgrees: when CPU follows the same model as wall time
// (no idle cores, a quiet machine), the two break-evens agree.
func TestCPUBreakEvenAgrees(t *testing.T) {
	recs := withCPU(modelRecords(40, 100, 200, 101, 0.01, 5), 40, 100, 200, 101, 0.01)
	be := Analyze(recs, 0.05, 1).BreakEvens[0]
	if be.CPU == nil || be.Disagree {
		t.Errorf("throughput %.1f %v, CPU %+v: want a CPU break-even that agrees", be.Predicted, be.PredictedCI, be.CPU)
	}
}

// TestNoCPUNoCPUBreakEven: records without CPU (an old records file) give
// the throughput break-even alone, which then drives the recommendation.
func TestNoCPUNoCPUBreakEven(t *testing.T) {
	be := Analyze(modelRecords(40, 100, 200, 101, 0.01, 3), 0.05, 1).BreakEvens[0]
	if be.CPU != nil {
		t.Errorf("CPU break-even %+v from records without CPU", be.CPU)
	}
	if be.BatchSize() != be.Recommended {
		t.Errorf("batch size = %d, want the throughput recommendation %d", be.BatchSize(), be.Recommended)
	}
}

// TestAutoPairedCPU: auto's CPU per document is compared with the best
// fixed size's within each repeat.
func TestAutoPairedCPU(t *testing.T) {
	recs := modelRecords(40, 100, 200, 101, 0.01, 5)
	for rep := range 5 {
		for _, mode := range []string{coordinator.ModeGoroutines, coordinator.ModeProcesses} {
			docsPerS := 2 * 1024 / (200 + 101*1024.0) * 1e6
			recs = append(recs, Record{Seq: len(recs), Repeat: rep, Point: Point{Mode: mode, Workers: 2, BatchSize: 0, Codec: "packed", Workload: "spin"},
				Docs: 65536, MeanBatch: 900, BatchUs: 2 * 900 / docsPerS * 1e6, DocsPerS: docsPerS})
		}
	}
	// batch 64 costs the least CPU per document; auto 10% more than it
	for i := range recs {
		switch recs[i].BatchSize {
		case 64:
			recs[i].CPUus = 100
		case 0:
			recs[i].CPUus = 110
		default:
			recs[i].CPUus = 120
		}
	}
	res := Analyze(recs, 0.05, 1)
	for _, a := range res.Autos {
		if a.BestCPUBatch != 64 {
			t.Errorf("%s: least-CPU fixed size = %d, want 64", a.Group, a.BestCPUBatch)
		}
		if math.Abs(a.CPURatio-1.1) > 1e-9 {
			t.Errorf("%s: auto/best CPU = %v, want 1.1", a.Group, a.CPURatio)
		}
		if a.CPURatioCI[0] <= 0 || a.CPURatioCI[1] < a.CPURatioCI[0] {
			t.Errorf("%s: CPU ratio interval %v, want one", a.Group, a.CPURatioCI)
		}
	}
}

// TestCPUNeverRecommendsAmortized: when processes' CPU per document stays
// 1.6x goroutines' at any size (the bytes through the broker), the CPU
// break-even is never reached and the recommendation is the size that
// amortizes their fixed CPU per batch to the target.
func TestCPUNeverRecommendsAmortized(t *testing.T) {
	recs := withCPU(modelRecords(40, 100, 200, 101, 0.01, 5), 2, 7.2, 75, 11.7, 0.02)
	c := Analyze(recs, 0.05, 1).BreakEvens[0].CPU
	if c == nil || !c.Never {
		t.Fatalf("CPU break-even %+v, want never", c)
	}
	want := 75 * 0.95 / (0.05 * 11.7) // 122
	if math.Abs(c.Amortized-want) > 0.15*want {
		t.Errorf("amortized = %.1f, want %.1f within 15%%", c.Amortized, want)
	}
	if !c.FromAmortized || c.Recommended != int(math.Ceil(c.Amortized)) {
		t.Errorf("recommended %d (from amortized %v), want ceil(%.1f)", c.Recommended, c.FromAmortized, c.Amortized)
	}
}

// TestCPUFitSkipsBatchOne: processes' CPU at batch 1 (idle wake-ups, which
// other load makes cost more or less) does not move the fixed cost the
// amortized size comes from, when larger sizes determine it.
func TestCPUFitSkipsBatchOne(t *testing.T) {
	recs := withCPU(modelRecords(40, 100, 200, 101, 0.01, 3), 2, 7.2, 60, 9.6, 0.01)
	for i := range recs {
		if recs[i].Mode == coordinator.ModeProcesses && recs[i].BatchSize == 1 {
			recs[i].CPUus *= 2 // a busy machine's wake-ups
		}
	}
	c := Analyze(recs, 0.05, 1).BreakEvens[0].CPU
	if want := 60 * 0.95 / (0.05 * 9.6); c == nil || math.Abs(c.Amortized-want) > 0.05*want {
		t.Errorf("CPU break-even %+v: want amortized %.1f within 5%% despite batch 1", c, want)
	}
	if c != nil && c.Processes.N != 5 {
		t.Errorf("CPU fit over %d sizes, want 5 (batch 1 left out)", c.Processes.N)
	}
}
