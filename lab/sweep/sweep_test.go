package sweep

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/natstest"
)

func TestFitLineRecoversALine(t *testing.T) {
	x := []float64{1, 4, 16, 64, 256, 1024}
	y := make([]float64, len(x))
	for i := range x {
		y[i] = 250 + 100*x[i]
	}
	a, c, r2 := FitLine(x, y)
	if math.Abs(a-250) > 1e-6 || math.Abs(c-100) > 1e-9 || r2 < 0.999999 {
		t.Errorf("fit = a %.4f c %.4f r2 %.6f, want 250, 100, 1", a, c, r2)
	}
	// 10% noise on one point lowers R2 but keeps the fit close.
	y[2] *= 1.1
	a, c, r2 = FitLine(x, y)
	if math.Abs(c-100)/100 > 0.05 || r2 >= 0.999999 || r2 < 0.9 {
		t.Errorf("noisy fit = a %.1f c %.2f r2 %.4f", a, c, r2)
	}
}

func TestCrossingMatchesTheModel(t *testing.T) {
	g := Fit{AUs: 2, CUs: 100, Workers: 2}
	p := Fit{AUs: 300, CUs: 101, Workers: 2}
	b, never := crossing(g, p, 0.95)
	if never {
		t.Fatal("never, want a crossing")
	}
	if got := p.Throughput(b) / g.Throughput(b); math.Abs(got-0.95) > 1e-9 {
		t.Errorf("ratio at the crossing %.2f = %.6f, want 0.95", b, got)
	}
	// Processes' per-document cost over goroutines'/0.95: never.
	if _, never := crossing(g, Fit{AUs: 300, CUs: 110}, 0.95); !never {
		t.Error("want never when c_p > c_g / 0.95")
	}
	if b, never := crossing(g, Fit{AUs: 1, CUs: 100}, 0.95); never || b != 1 {
		t.Errorf("cheap processes: b = %v never = %v, want 1 (already there)", b, never)
	}
}

func TestObservedCrossingInterpolatesInLogBatch(t *testing.T) {
	rs := []Ratio{{Batch: 1, Observed: 0.3}, {Batch: 16, Observed: 0.9}, {Batch: 64, Observed: 1.0}}
	got := observedCrossing(rs, 0.95)
	if want := 32.0; math.Abs(got-want) > 1e-9 { // halfway between 16 and 64 in log space
		t.Errorf("observed = %v, want %v", got, want)
	}
	if got := observedCrossing(rs[:2], 0.95); got != 0 {
		t.Errorf("never reached: observed = %v, want 0", got)
	}
}

func TestMonotonePoolsViolators(t *testing.T) {
	got := Monotone([]float64{0.4, 0.9, 0.7, 1.0, 1.2, 0.8})
	want := []float64{0.4, 0.8, 0.8, 1.0, 1.0, 1.0}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-9 {
			t.Fatalf("Monotone = %v, want %v", got, want)
		}
	}
	// A lucky run at batch 4 no longer sets the crossing.
	rs := []Ratio{{Batch: 1, Observed: 0.4}, {Batch: 4, Observed: 0.96}, {Batch: 16, Observed: 0.8}, {Batch: 64, Observed: 1.0}}
	if got := observedCrossing(rs, 0.95); got <= 16 || got >= 64 {
		t.Errorf("observed = %v, want between 16 and 64", got)
	}
}

func TestSpread(t *testing.T) {
	s := NewSpread([]float64{5, 1, 3, 2, 4})
	if s.Median != 3 || s.Min != 1 || s.Max != 5 || s.Q1 != 2 || s.Q3 != 4 {
		t.Errorf("spread = %+v", s)
	}
}

func smallSweep(t *testing.T) Config {
	_, url := natstest.NewServer(t)
	natstest.StartWorkers(t, url, 2)
	return Config{
		Grid: Grid{
			Modes:      []string{coordinator.ModeGoroutines, coordinator.ModeProcesses},
			Workers:    []int{1, 2},
			BatchSizes: []int{1, 16, 0},
			Workload:   "spin",
			SpinCosts:  []time.Duration{20 * time.Microsecond},
		},
		Repeats:   2,
		Seed:      7,
		PointTime: 20 * time.Millisecond,
		NC:        natstest.Connect(t, url),
	}
}

func TestSweepRecordsEveryRunInShuffledRounds(t *testing.T) {
	cfg := smallSweep(t)
	path := filepath.Join(t.TempDir(), "runs.csv")
	rw, err := CreateRecords(path)
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	cfg.OnRecord = func(r Record, done, total int) error {
		calls++
		if done != calls || total != 24 {
			t.Errorf("progress %d/%d, want %d/24", done, total, calls)
		}
		return rw.Write(r)
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	// 2 modes x 2 worker counts x 3 batch sizes x 2 repeats.
	if got, want := len(res.Records), 24; got != want {
		t.Fatalf("records = %d, want %d", got, want)
	}
	for i, r := range res.Records {
		if r.Error != "" || r.Docs == 0 || r.DocsPerS <= 0 || r.BatchUs <= 0 {
			t.Errorf("record %d = %+v", i, r)
		}
		if r.Seq != i || r.Repeat != i/12 {
			t.Errorf("record %d: seq %d repeat %d, want interleaved rounds of 12", i, r.Seq, r.Repeat)
		}
		if r.Mode == coordinator.ModeProcesses && r.TransportUs <= 0 {
			t.Errorf("record %d: processes run without transport time: %+v", i, r)
		}
	}
	var k0, k1 []string
	for _, r := range res.Records {
		if r.Repeat == 0 {
			k0 = append(k0, r.Key())
		} else {
			k1 = append(k1, r.Key())
		}
	}
	// The modes of a block (same settings and batch size) run back to back:
	// each round of 12 runs is 6 blocks of 2.
	for i := 0; i < len(res.Records); i += 2 {
		a, b := res.Records[i], res.Records[i+1]
		if a.Series() != b.Series() || a.BatchSize != b.BatchSize || a.Mode == b.Mode {
			t.Errorf("runs %d and %d (%s, %s) are not one block's two modes", i, i+1, a.Key(), b.Key())
		}
	}
	// A series' runs stay together within a round: 2 series, 2 segments.
	for rep := range 2 {
		segments, last := 0, ""
		for _, r := range res.Records[12*rep : 12*rep+12] {
			if r.Series() != last {
				segments, last = segments+1, r.Series()
			}
		}
		if segments != 2 {
			t.Errorf("round %d: the 2 series' runs fall in %d segments, want 2 (each series together)", rep, segments)
		}
	}
	if fmt.Sprint(k0) == fmt.Sprint(k1) {
		t.Errorf("both rounds ran in the same order: %v", k0)
	}
	if got, want := len(res.Points), 12; got != want {
		t.Errorf("points = %d, want %d", got, want)
	}
	for _, s := range res.Points {
		if s.N != 2 || s.DocsPerS.Min > s.DocsPerS.Median || s.DocsPerS.Median > s.DocsPerS.Max {
			t.Errorf("%s: summary %+v", s.Key, s)
		}
	}
	if got, want := len(res.Fits), 4; got != want {
		t.Errorf("fits = %d, want one per mode and worker count (%d)", got, want)
	}
	if got, want := len(res.BreakEvens), 2; got != want {
		t.Errorf("break-evens = %d, want %d", got, want)
	}
	if got, want := len(res.Autos), 4; got != want {
		t.Errorf("auto comparisons = %d, want %d", got, want)
	}

	// The CSV file holds the same runs and reads back.
	f, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ReadRecords(bytes.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != 24 || back[5] != res.Records[5] {
		t.Errorf("read back %d records; record 5 = %+v, want %+v", len(back), back[5], res.Records[5])
	}
	if again := Analyze(back, 0.05, 1); len(again.Points) != 12 || len(again.BreakEvens) != 2 {
		t.Errorf("Analyze of the file: %d points, %d break-evens", len(again.Points), len(again.BreakEvens))
	}
}

func TestSweepInterruptKeepsWhatWasMeasured(t *testing.T) {
	cfg := smallSweep(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.OnRecord = func(r Record, done, total int) error {
		if done == 5 {
			cancel()
		}
		return nil
	}
	res, err := Run(ctx, cfg)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if !res.Interrupted || len(res.Records) != 5 || len(res.Points) == 0 {
		t.Errorf("interrupted = %v, records = %d, points = %d; want the 5 finished runs summarised",
			res.Interrupted, len(res.Records), len(res.Points))
	}
}

func TestRecordsJSONLRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "runs.jsonl")
	w, err := CreateRecords(path)
	if err != nil {
		t.Fatal(err)
	}
	in := []Record{
		{Seq: 0, Point: Point{Mode: "goroutines", Workers: 2, BatchSize: 64, Codec: "packed", Workload: "spin", SpinCost: 100 * time.Microsecond}, DocsPerS: 1234.5},
		{Seq: 1, Repeat: 1, Point: Point{Mode: "processes", Workers: 2, Codec: "packed", Workload: "embed"}, Error: "boom"},
	}
	for _, r := range in {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	// Each record is on disk before Close: an interrupted sweep keeps them.
	f, _ := os.ReadFile(path)
	if got := bytes.Count(f, []byte("\n")); got != 2 {
		t.Errorf("lines before close = %d, want 2", got)
	}
	w.Close()
	back, err := ReadRecords(bytes.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != 2 || back[0] != in[0] || back[1] != in[1] {
		t.Errorf("read back %+v, want %+v", back, in)
	}
	if _, err := CreateRecords(filepath.Join(t.TempDir(), "x.txt")); err == nil {
		t.Error("want an error for a .txt records file")
	}
}

func TestPointKeys(t *testing.T) {
	p := Point{Mode: "processes", Workers: 2, BatchSize: 0, Codec: "packed", Workload: "spin", SpinCost: 100 * time.Microsecond, OutBytes: 16}
	if got, want := p.Key(), "workload=spin/spin_cost=100µs/out_bytes=16/codec=packed/workers=2/mode=processes/batch=auto"; got != want {
		t.Errorf("key = %q, want %q", got, want)
	}
}

// modelRecords builds the records of a sweep whose per-batch times follow
// t(b) = a + c*b per mode, with a multiplicative noise of +-noise that is
// the same for both modes of one batch size and repeat except for a part
// of its own: what runs back to back sees the same machine.
func modelRecords(ag, cg, ap, cp, noise float64, repeats int) []Record {
	rng := rand.New(rand.NewPCG(7, 7))
	var recs []Record
	for rep := range repeats {
		for _, b := range []int{1, 4, 16, 64, 256, 1024} {
			shared := 1 + noise*(2*rng.Float64()-1)
			for _, m := range []struct {
				mode string
				a, c float64
			}{{coordinator.ModeGoroutines, ag, cg}, {coordinator.ModeProcesses, ap, cp}} {
				t := (m.a + m.c*float64(b)) * shared * (1 + noise/2*(2*rng.Float64()-1))
				recs = append(recs, Record{Seq: len(recs), Repeat: rep, Point: Point{Mode: m.mode, Workers: 2, BatchSize: b, Codec: "packed", Workload: "spin", SpinCost: 100 * time.Microsecond},
					Docs: int64(64 * b), MeanBatch: float64(b), BatchUs: t, DocsPerS: 2 * float64(b) / t * 1e6})
			}
		}
	}
	return recs
}

func TestBreakEvenIntervals(t *testing.T) {
	// Processes level off at 0.99x goroutines: b* = (0.95*200 - 40) /
	// (100 - 0.95*101) = 37, well determined by five quiet repeats.
	res := Analyze(modelRecords(40, 100, 200, 101, 0.01, 5), 0.05, 1)
	if len(res.BreakEvens) != 1 {
		t.Fatalf("break-evens = %d, want 1", len(res.BreakEvens))
	}
	be := res.BreakEvens[0]
	lo, hi := be.PredictedCI[0], be.PredictedCI[1]
	if lo <= 0 || hi <= 0 || lo > be.Predicted || be.Predicted > hi || hi/lo > 1.5 {
		t.Errorf("predicted %.1f, 90%% interval %v: want a finite interval around it, narrower than 1.5x", be.Predicted, be.PredictedCI)
	}
	if be.ObservedCI[0] <= 0 || be.ObservedCI[1] <= 0 {
		t.Errorf("observed %.1f, 90%% interval %v: want a finite interval", be.Observed, be.ObservedCI)
	}
	// Processes level off at 0.95x, the break-even level itself: noise
	// of 2% decides whether they ever cross, and the interval says so.
	res = Analyze(modelRecords(40, 100, 200, 100/0.95, 0.02, 5), 0.05, 1)
	if ci := res.BreakEvens[0].PredictedCI; ci[1] != -1 {
		t.Errorf("plateau at the level: predicted interval %v, want an open upper end (-1)", ci)
	}
	// One repeat: nothing to resample.
	res = Analyze(modelRecords(40, 100, 200, 101, 0.01, 1), 0.05, 1)
	if ci := res.BreakEvens[0].PredictedCI; ci != [2]float64{} {
		t.Errorf("one repeat: interval %v, want none", ci)
	}
}

func TestAutoComparisonInterval(t *testing.T) {
	recs := modelRecords(40, 100, 200, 101, 0.01, 5)
	rng := rand.New(rand.NewPCG(3, 3))
	for rep := range 5 {
		for _, mode := range []string{coordinator.ModeGoroutines, coordinator.ModeProcesses} {
			// as fast as batch 1024 of the model, give or take 1%
			docsPerS := 2 * 1024 / (200 + 101*1024.0) * 1e6 * (1 + 0.01*(2*rng.Float64()-1))
			recs = append(recs, Record{Seq: len(recs), Repeat: rep, Point: Point{Mode: mode, Workers: 2, BatchSize: 0, Codec: "packed", Workload: "spin", SpinCost: 100 * time.Microsecond},
				Docs: 65536, MeanBatch: 900, BatchUs: 2 * 900 / docsPerS * 1e6, DocsPerS: docsPerS})
		}
	}
	res := Analyze(recs, 0.05, 1)
	if len(res.Autos) != 2 {
		t.Fatalf("auto comparisons = %d, want 2", len(res.Autos))
	}
	for _, a := range res.Autos {
		if lo, hi := a.RatioCI[0], a.RatioCI[1]; lo <= 0 || lo > a.Ratio || a.Ratio > hi || hi-lo > 0.1 {
			t.Errorf("%s: auto/best %.3f, 90%% interval %v: want a narrow interval around it", a.Group, a.Ratio, a.RatioCI)
		}
	}
}
