package sweep

import (
	"cmp"
	"math"
	"slices"
)

// CPUBreakEven is the break-even measured in CPU per document instead of
// wall throughput: the batch size where processes spend at most 1/Level
// of goroutines' CPU per document (goroutines' CPU over processes' reaches
// Level). CPU time is what the boundary costs; a shared machine's other
// load moves wall throughput a lot and CPU per document little, and idle
// cores can hide the broker's and the coordinator's CPU from throughput
// altogether. This is the break-even ferry recommend uses.
type CPUBreakEven struct {
	// Goroutines and Processes fit CPU per batch, cpu(b) = A + C*b in
	// microseconds: every process of the mode together (this one, the
	// embedded broker, the workers).
	Goroutines Fit `json:"goroutines"`
	Processes  Fit `json:"processes"`
	// Predicted solves (a_g + c_g b) / (a_p + c_p b) = Level; Never when
	// processes' per-document CPU rules it out at any size.
	Predicted float64 `json:"predicted"`
	Never     bool    `json:"never,omitempty"`
	// Observed interpolates the paired per-repeat ratios as BreakEven's
	// Observed does; 0 when not reached within the grid.
	Observed float64 `json:"observed"`
	// Amortized is the batch size where processes' fixed CPU per batch is
	// Target of their CPU per batch, a_p(1-T) / (T c_p): --batch auto's
	// own rule applied to CPU. Batching amortizes that share and nothing
	// else: past it, what processes cost above goroutines is per document
	// (the bytes through the broker), which no batch size removes. 0 when
	// the fit has no positive fixed cost.
	Amortized   float64    `json:"amortized"`
	AmortizedCI [2]float64 `json:"amortized_ci"`
	// Recommended is the smallest batch size whose predicted CPU overhead
	// (1 - goroutines' CPU per document / processes') is at most Target;
	// where no size reaches that, Amortized rounded up. RecommendedOverhead
	// is the CPU overhead predicted there.
	Recommended         int     `json:"recommended"`
	RecommendedOverhead float64 `json:"recommended_overhead"`
	FromAmortized       bool    `json:"recommended_from_amortized,omitempty"`
	// Ratios are goroutines' CPU per document over processes' at each
	// batch size (1 = the boundary costs no CPU), observed (median over
	// repeats, paired within each) and predicted by the fits.
	Ratios      []Ratio    `json:"ratios"`
	PredictedCI [2]float64 `json:"predicted_ci"`
	ObservedCI  [2]float64 `json:"observed_ci"`
}

// cpuFitMinBatch is the least batch size the CPU fit uses when three or
// more larger sizes were measured. At batches of one or two documents
// every batch wakes the broker, a worker and the coordinator from idle, and
// what a wake-up costs in CPU depends on the scheduler and the machine's
// other load: processes' CPU per document at batch 1 was bimodal within
// one embed sweep on 2 shared cores (40 and 107 us) and its median moved
// 60 to 106 us between two sweeps, swinging the fitted fixed cost and the
// amortized size 1.6x; without batch 1 the two sweeps' amortized sizes
// agreed within 3% at two workers (123 and 127).
const cpuFitMinBatch = 4

// cpuFit fits one group's median CPU per batch (CPU per document x batch
// size) against batch size, from cpuFitMinBatch up when three or more such
// sizes were measured; ok is false with fewer than two sizes.
func cpuFit(g string, ss []Summary) (Fit, bool) {
	var x, y []float64
	large := 0
	for _, s := range ss {
		if s.N > 0 && s.BatchSize >= cpuFitMinBatch && s.CPUus.Median > 0 {
			large++
		}
	}
	for _, s := range ss {
		if s.N == 0 || s.BatchSize == 0 || s.CPUus.Median <= 0 || (large >= 3 && s.BatchSize < cpuFitMinBatch) {
			continue
		}
		x, y = append(x, float64(s.BatchSize)), append(y, s.CPUus.Median*float64(s.BatchSize))
	}
	if len(x) < 2 {
		return Fit{}, false
	}
	a, c, r2 := FitLine(x, y)
	return Fit{Group: g, Series: ss[0].Series(), Mode: ss[0].Mode, Workers: ss[0].Workers, AUs: a, CUs: c, R2: r2, N: len(x)}, true
}

// cpuBreakEven derives the CPU break-even of one series from its CPU fits.
func (r *Result) cpuBreakEven(g, p Fit) *CPUBreakEven {
	be := &CPUBreakEven{Goroutines: g, Processes: p}
	be.Predicted, be.Never = crossing(g, p, r.Level)
	if p.AUs > 0 && p.CUs > 0 {
		be.Amortized = max(p.AUs*(1-r.Target)/(r.Target*p.CUs), 1)
	}
	if b, never := crossing(g, p, 1-r.Target); !never {
		be.Recommended = max(int(math.Ceil(b)), 1)
	} else if be.Amortized > 0 {
		be.Recommended, be.FromAmortized = int(math.Ceil(be.Amortized)), true
	}
	if pc := p.At(float64(be.Recommended)); be.Recommended > 0 && pc > 0 {
		be.RecommendedOverhead = 1 - g.At(float64(be.Recommended))/pc
	}
	for b, rs := range r.pairedCPU(g.Group, p.Group) {
		pred := 0.0
		if pc := p.At(float64(b)); pc > 0 {
			pred = g.At(float64(b)) / pc
		}
		be.Ratios = append(be.Ratios, Ratio{Batch: b, Observed: NewSpread(rs).Median, Predicted: pred})
	}
	slices.SortFunc(be.Ratios, func(a, b Ratio) int { return cmp.Compare(a.Batch, b.Batch) })
	be.Observed = observedCrossing(be.Ratios, r.Level)
	return be
}

// pairedCPU returns, per batch size, goroutines' CPU per document over
// processes' in each repeat (the two ran back to back).
func (r *Result) pairedCPU(gGroup, pGroup string) map[int][]float64 {
	return r.paired(gGroup, pGroup, func(rec Record) float64 { return rec.CPUus }, func(g, p float64) float64 { return g / p })
}

// pairedAuto returns auto's figure over the best fixed size's in each
// repeat of group g, for docs/s (thr) and CPU per document (cpu).
func (r *Result) pairedAuto(g string, best int) (thr, cpu []float64) {
	type fig struct{ docsPerS, cpu float64 }
	fixed := map[int]fig{}
	for _, rec := range r.Records {
		if rec.Error == "" && rec.Group() == g && rec.BatchSize == best {
			fixed[rec.Repeat] = fig{rec.DocsPerS, rec.CPUus}
		}
	}
	for _, rec := range r.Records {
		if rec.Error != "" || rec.Group() != g || rec.BatchSize != 0 {
			continue
		}
		f, ok := fixed[rec.Repeat]
		if !ok {
			continue
		}
		if f.docsPerS > 0 {
			thr = append(thr, rec.DocsPerS/f.docsPerS)
		}
		if f.cpu > 0 && rec.CPUus > 0 {
			cpu = append(cpu, rec.CPUus/f.cpu)
		}
	}
	return thr, cpu
}

// disagree reports whether the throughput and CPU break-evens differ
// beyond their intervals (beyond 25% of each other without intervals); an
// unreached end counts as unbounded.
func disagree(be BreakEven) bool {
	c := be.CPU
	if c == nil {
		return false
	}
	point := func(x float64, never bool) float64 {
		if never {
			return math.Inf(1)
		}
		return x
	}
	end := func(x float64) float64 {
		if x < 0 {
			return math.Inf(1)
		}
		return x
	}
	if be.PredictedCI != [2]float64{} && c.PredictedCI != [2]float64{} {
		return end(be.PredictedCI[1]) < end(c.PredictedCI[0]) || end(c.PredictedCI[1]) < end(be.PredictedCI[0])
	}
	t, u := point(be.Predicted, be.Never), point(c.Predicted, c.Never)
	if math.IsInf(t, 1) || math.IsInf(u, 1) {
		return math.IsInf(t, 1) != math.IsInf(u, 1)
	}
	return t > 1.25*u || u > 1.25*t
}

// BatchSize is the batch size ferry recommend prints for this series: the
// CPU break-even's recommendation when CPU was measured, else the
// throughput one's.
func (b BreakEven) BatchSize() int {
	if b.CPU != nil && b.CPU.Recommended > 0 {
		return b.CPU.Recommended
	}
	return b.Recommended
}
