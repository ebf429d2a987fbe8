package sweep

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/quantile"
)

// Result is a sweep's records and what was derived from them.
type Result struct {
	Seed        uint64       `json:"seed"`
	Repeats     int          `json:"repeats"`
	Target      float64      `json:"overhead_target"` // overhead the recommendation holds
	Level       float64      `json:"break_even_level"`
	Interrupted bool         `json:"interrupted,omitempty"`
	Records     []Record     `json:"records"`
	Points      []Summary    `json:"points"`
	Fits        []Fit        `json:"fits"`
	CPUFits     []Fit        `json:"cpu_fits,omitempty"` // CPU per batch against batch size, per group (cpu.go)
	BreakEvens  []BreakEven  `json:"break_evens"`
	Autos       []AutoResult `json:"auto,omitempty"`
}

// BreakEvenLevel is the share of goroutines' throughput at which processes
// are said to break even.
const BreakEvenLevel = 0.95

// Spread is a sample's median and spread: nearest-rank quantiles
// (internal/quantile), so the median of an even count is the lower middle.
type Spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	Q1     float64 `json:"q1"`
	Q3     float64 `json:"q3"`
}

// NewSpread summarises xs (nil or empty gives zeros).
func NewSpread(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	v := slices.Clone(xs)
	slices.Sort(v)
	return Spread{Median: quantile.Sorted(v, 0.5), Min: v[0], Max: v[len(v)-1], Q1: quantile.Sorted(v, 0.25), Q3: quantile.Sorted(v, 0.75)}
}

// Summary is one point over its repeats.
type Summary struct {
	Point
	Key       string  `json:"key"`
	N         int     `json:"n"`      // runs without error
	Errors    int     `json:"errors"` // runs that failed
	Docs      int64   `json:"docs"`   // documents per run
	DocsPerS  Spread  `json:"docs_per_s"`
	CPUus     Spread  `json:"cpu_us_per_doc"` // zeros when not measured
	BatchUs   Spread  `json:"batch_us"`
	MeanBatch float64 `json:"mean_batch"` // median of documents per batch
	Overhead  float64 `json:"overhead"`   // median non-compute share of per-batch stage time, queue left out
	// Median per-batch stage means, microseconds.
	EncodeUs       float64 `json:"encode_us"`
	TransportUs    float64 `json:"transport_us"`
	QueueUs        float64 `json:"queue_us"`
	WorkerDecodeUs float64 `json:"worker_decode_us"`
	ComputeUs      float64 `json:"compute_us"`
	WorkerEncodeUs float64 `json:"worker_encode_us"`
	DecodeUs       float64 `json:"decode_us"`
}

// Summarize groups records by point, in the order of points (points with
// no record are left out).
func Summarize(points []Point, recs []Record) []Summary {
	by := map[string][]Record{}
	for _, r := range recs {
		by[r.Key()] = append(by[r.Key()], r)
	}
	var out []Summary
	for _, p := range points {
		rs := by[p.Key()]
		if len(rs) == 0 {
			continue
		}
		s := Summary{Point: p, Key: p.Key()}
		var thr, bus, mb, ov, cpu []float64
		var st [7][]float64
		for _, r := range rs {
			if r.Error != "" {
				s.Errors++
				continue
			}
			s.N++
			s.Docs = r.Docs
			if r.CPUus > 0 {
				cpu = append(cpu, r.CPUus)
			}
			thr, bus, mb, ov = append(thr, r.DocsPerS), append(bus, r.BatchUs), append(mb, r.MeanBatch), append(ov, r.Overhead)
			for i, x := range []float64{r.EncodeUs, r.TransportUs, r.WorkerDecodeUs, r.ComputeUs, r.WorkerEncodeUs, r.DecodeUs, r.QueueUs} {
				st[i] = append(st[i], x)
			}
		}
		s.DocsPerS, s.BatchUs, s.CPUus = NewSpread(thr), NewSpread(bus), NewSpread(cpu)
		s.MeanBatch, s.Overhead = NewSpread(mb).Median, NewSpread(ov).Median
		s.EncodeUs, s.TransportUs, s.WorkerDecodeUs = NewSpread(st[0]).Median, NewSpread(st[1]).Median, NewSpread(st[2]).Median
		s.ComputeUs, s.WorkerEncodeUs, s.DecodeUs = NewSpread(st[3]).Median, NewSpread(st[4]).Median, NewSpread(st[5]).Median
		s.QueueUs = NewSpread(st[6]).Median
		out = append(out, s)
	}
	return out
}

// Fit is t(b) = A + C*b fitted to one group's median per-batch times
// (BatchUs) against batch size, weighted by 1/t^2 so that small and large
// batches count alike (relative error). R2 is the weighted coefficient of
// determination.
type Fit struct {
	Group   string  `json:"group"`
	Series  string  `json:"series"`
	Mode    string  `json:"mode"`
	Workers int     `json:"workers"`
	AUs     float64 `json:"a_us"` // fixed time per batch
	CUs     float64 `json:"c_us"` // time per document
	R2      float64 `json:"r2"`
	N       int     `json:"n"` // batch sizes fitted
}

// At is the fitted per-batch time at batch size b, microseconds.
func (f Fit) At(b float64) float64 { return f.AUs + f.CUs*b }

// Throughput is the fitted documents per second at batch size b.
func (f Fit) Throughput(b float64) float64 {
	if t := f.At(b); t > 0 {
		return float64(f.Workers) * b / t * 1e6
	}
	return 0
}

// FitLine fits y = a + c*x by least squares weighted by 1/y^2.
func FitLine(x, y []float64) (a, c, r2 float64) {
	var s, sx, sy, sxx, sxy float64
	for i := range x {
		if y[i] <= 0 {
			continue
		}
		w := 1 / (y[i] * y[i])
		s += w
		sx += w * x[i]
		sy += w * y[i]
		sxx += w * x[i] * x[i]
		sxy += w * x[i] * y[i]
	}
	den := s*sxx - sx*sx
	if s == 0 || den == 0 {
		return 0, 0, 0
	}
	c = (s*sxy - sx*sy) / den
	a = (sy - c*sx) / s
	mean := sy / s
	var res, tot float64
	for i := range x {
		if y[i] <= 0 {
			continue
		}
		w := 1 / (y[i] * y[i])
		res += w * (y[i] - a - c*x[i]) * (y[i] - a - c*x[i])
		tot += w * (y[i] - mean) * (y[i] - mean)
	}
	if tot > 0 {
		r2 = 1 - res/tot
	}
	return a, c, r2
}

// BreakEven compares processes with goroutines on one series.
type BreakEven struct {
	Series     string `json:"series"`
	Workers    int    `json:"workers"`
	Goroutines Fit    `json:"goroutines"`
	Processes  Fit    `json:"processes"`
	// Predicted is the batch size at which the fits put processes at
	// Level x goroutines' throughput: (L*a_p - a_g) / (c_g - L*c_p).
	// Never means the per-document costs rule it out at any size.
	Predicted float64 `json:"predicted"`
	Never     bool    `json:"never,omitempty"`
	// Observed interpolates (in log batch size) between the swept sizes
	// where the throughput ratio crosses Level; 0 when it never does
	// within the grid, the smallest size when it is already there. The
	// ratio at a size is the median over repeats of processes over
	// goroutines in the same repeat (they ran back to back).
	Observed float64 `json:"observed"`
	// Recommended is the smallest batch size whose predicted overhead
	// (1 - processes/goroutines throughput) is at most Target; with the
	// default 5% target it is Predicted rounded up.
	Recommended         int     `json:"recommended"`
	RecommendedOverhead float64 `json:"recommended_overhead"`
	Ratios              []Ratio `json:"ratios"`
	// PredictedCI and ObservedCI are 90% bootstrap intervals of Predicted
	// and Observed over the sweep's repeats (Result.intervals); -1 stands for
	// "never" or "not reached", an unbounded end. Zero without repeats.
	PredictedCI [2]float64 `json:"predicted_ci"`
	ObservedCI  [2]float64 `json:"observed_ci"`
	// CPU is the same break-even from CPU per document (cpu.go); nil when
	// CPU was not measured. Disagree is set when the two differ beyond
	// their intervals.
	CPU      *CPUBreakEven `json:"cpu,omitempty"`
	Disagree bool          `json:"disagree,omitempty"`
}

// Ratio is processes over goroutines throughput at one batch size.
type Ratio struct {
	Batch     int     `json:"batch"`
	Observed  float64 `json:"observed"`
	Predicted float64 `json:"predicted"`
}

// AutoResult sets an auto-batched point against the best fixed batch size
// of its group.
type AutoResult struct {
	Group     string  `json:"group"`
	DocsPerS  float64 `json:"docs_per_s"`
	MeanBatch float64 `json:"mean_batch"`
	Overhead  float64 `json:"overhead"`
	BestBatch int     `json:"best_batch"`
	BestDocsS float64 `json:"best_docs_per_s"`
	// Ratio is auto over best fixed: the median over repeats of the two
	// runs' ratio within each repeat (paired), or of the medians when no
	// repeat has both.
	Ratio float64 `json:"ratio"`
	// RatioCI is Ratio's 90% bootstrap interval over the repeats (zero
	// without repeats). "Best fixed" is the largest of several noisy
	// medians, so Ratio leans low; the interval shows by how much.
	RatioCI [2]float64 `json:"ratio_ci"`
	// CPUus is auto's median CPU per document; CPURatio is auto's over
	// that of BestCPUBatch, the fixed size with the least median CPU per
	// document, paired by repeat (above 1 = auto costs more CPU per
	// document), with its 90% interval. Zero when not measured.
	CPUus        float64    `json:"cpu_us_per_doc,omitempty"`
	BestCPUBatch int        `json:"best_cpu_batch,omitempty"`
	CPURatio     float64    `json:"cpu_ratio,omitempty"`
	CPURatioCI   [2]float64 `json:"cpu_ratio_ci,omitempty"`
}

// Analyze rebuilds a Result from records alone (a records file), with
// points ordered by series, mode and batch size; seed seeds the bootstrap
// intervals.
func Analyze(recs []Record, target float64, seed uint64) *Result {
	r := &Result{Target: target, Records: recs, Seed: seed}
	seen := map[string]bool{}
	var points []Point
	for _, rec := range recs {
		if !seen[rec.Key()] {
			seen[rec.Key()] = true
			points = append(points, rec.Point)
		}
		r.Repeats = max(r.Repeats, rec.Repeat+1)
	}
	slices.SortStableFunc(points, func(a, b Point) int {
		return cmp.Or(cmp.Compare(a.Series(), b.Series()), cmp.Compare(a.Mode, b.Mode), cmp.Compare(a.BatchSize, b.BatchSize))
	})
	r.finish(points)
	return r
}

// finish derives summaries, fits, break-evens and auto comparisons, and the
// break-evens' bootstrap intervals.
func (r *Result) finish(points []Point) {
	r.derive(points)
	r.intervals(points)
	for i := range r.BreakEvens {
		r.BreakEvens[i].Disagree = disagree(r.BreakEvens[i])
	}
}

// derive derives summaries, fits, break-evens and auto comparisons.
func (r *Result) derive(points []Point) {
	if r.Target == 0 {
		r.Target = 0.05
	}
	r.Level = BreakEvenLevel
	r.Points = Summarize(points, r.Records)
	r.Fits, r.CPUFits, r.BreakEvens, r.Autos = nil, nil, nil, nil
	groups := map[string][]Summary{}
	var order []string
	for _, s := range r.Points {
		g := s.Group()
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], s)
	}
	fits, cpuFits := map[string]Fit{}, map[string]Fit{}
	for _, g := range order {
		ss := groups[g]
		var x, y []float64
		var best, bestCPU *Summary
		var auto *Summary
		for i := range ss {
			s := &ss[i]
			if s.N == 0 {
				continue
			}
			if s.BatchSize == 0 {
				auto = s
				continue
			}
			x, y = append(x, float64(s.BatchSize)), append(y, s.BatchUs.Median)
			if best == nil || s.DocsPerS.Median > best.DocsPerS.Median {
				best = s
			}
			if s.CPUus.Median > 0 && (bestCPU == nil || s.CPUus.Median < bestCPU.CPUus.Median) {
				bestCPU = s
			}
		}
		if auto != nil && best != nil && best.DocsPerS.Median > 0 {
			a := AutoResult{Group: g, DocsPerS: auto.DocsPerS.Median, MeanBatch: auto.MeanBatch, Overhead: auto.Overhead,
				BestBatch: best.BatchSize, BestDocsS: best.DocsPerS.Median, Ratio: auto.DocsPerS.Median / best.DocsPerS.Median, CPUus: auto.CPUus.Median}
			if thr, _ := r.pairedAuto(g, best.BatchSize); len(thr) > 0 {
				a.Ratio = NewSpread(thr).Median
			}
			if bestCPU != nil {
				if _, cpu := r.pairedAuto(g, bestCPU.BatchSize); len(cpu) > 0 {
					a.BestCPUBatch, a.CPURatio = bestCPU.BatchSize, NewSpread(cpu).Median
				}
			}
			r.Autos = append(r.Autos, a)
		}
		if f, ok := cpuFit(g, ss); ok {
			r.CPUFits = append(r.CPUFits, f)
			cpuFits[g] = f
		}
		if len(x) < 2 {
			continue
		}
		a, c, r2 := FitLine(x, y)
		f := Fit{Group: g, Series: ss[0].Series(), Mode: ss[0].Mode, Workers: ss[0].Workers, AUs: a, CUs: c, R2: r2, N: len(x)}
		r.Fits = append(r.Fits, f)
		fits[g] = f
	}
	for _, f := range r.Fits {
		if f.Mode != coordinator.ModeProcesses {
			continue
		}
		g, ok := fits[f.Series+"/mode="+coordinator.ModeGoroutines]
		if !ok {
			continue
		}
		be := r.breakEven(g, f, groups)
		gc, okg := cpuFits[g.Group]
		if pc, okp := cpuFits[f.Group]; okg && okp {
			be.CPU = r.cpuBreakEven(gc, pc)
		}
		r.BreakEvens = append(r.BreakEvens, be)
	}
}

func (r *Result) breakEven(g, p Fit, groups map[string][]Summary) BreakEven {
	be := BreakEven{Series: p.Series, Workers: p.Workers, Goroutines: g, Processes: p}
	be.Predicted, be.Never = crossing(g, p, r.Level)
	if b, never := crossing(g, p, 1-r.Target); !never {
		be.Recommended = max(int(math.Ceil(b)), 1)
		if gt := g.Throughput(float64(be.Recommended)); gt > 0 {
			be.RecommendedOverhead = 1 - p.Throughput(float64(be.Recommended))/gt
		}
	}
	thr := func(group string) map[int]float64 {
		m := map[int]float64{}
		for _, s := range groups[group] {
			if s.N > 0 && s.BatchSize > 0 {
				m[s.BatchSize] = s.DocsPerS.Median
			}
		}
		return m
	}
	tg, tp := thr(g.Group), thr(p.Group)
	paired := r.pairedRatios(g.Group, p.Group)
	for b, x := range tp {
		if y, ok := tg[b]; ok && y > 0 {
			pred := 0.0
			if gt := g.Throughput(float64(b)); gt > 0 {
				pred = p.Throughput(float64(b)) / gt
			}
			obs := x / y
			if rs := paired[b]; len(rs) > 0 {
				obs = NewSpread(rs).Median
			}
			be.Ratios = append(be.Ratios, Ratio{Batch: b, Observed: obs, Predicted: pred})
		}
	}
	slices.SortFunc(be.Ratios, func(a, b Ratio) int { return cmp.Compare(a.Batch, b.Batch) })
	be.Observed = observedCrossing(be.Ratios, r.Level)
	return be
}

// bootstrapRounds is how many resamples a break-even's intervals take.
const bootstrapRounds = 200

// intervals sets the 90% bootstrap intervals of each break-even and each
// auto comparison. It resamples
// whole repeats with replacement (a repeat keeps its back-to-back runs
// paired), derives the break-evens again from each resample, and takes the
// 5th and 95th percentiles; a break-even never reached counts as
// unbounded. Where processes level off near the break-even level, a small
// change in either mode's per-document cost moves the crossing a long way,
// and the intervals say so.
func (r *Result) intervals(points []Point) {
	if r.Repeats < 2 || len(r.BreakEvens)+len(r.Autos) == 0 {
		return
	}
	byRepeat := make([][]Record, r.Repeats)
	for _, rec := range r.Records {
		if rec.Repeat >= 0 && rec.Repeat < r.Repeats {
			byRepeat[rec.Repeat] = append(byRepeat[rec.Repeat], rec)
		}
	}
	rng := rand.New(rand.NewPCG(r.Seed, 0xb007))
	pred, obs, auto := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	cpuPred, cpuObs, cpuAuto, cpuAm := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	for range bootstrapRounds {
		s := &Result{Target: r.Target, Records: make([]Record, 0, len(r.Records))}
		for i := range r.Repeats {
			for _, rec := range byRepeat[rng.IntN(r.Repeats)] {
				rec.Repeat = i
				s.Records = append(s.Records, rec)
			}
		}
		s.derive(points)
		for _, be := range s.BreakEvens {
			p, o := be.Predicted, be.Observed
			if be.Never {
				p = math.Inf(1)
			}
			if o == 0 {
				o = math.Inf(1)
			}
			pred[be.Series], obs[be.Series] = append(pred[be.Series], p), append(obs[be.Series], o)
			if c := be.CPU; c != nil {
				p, o := c.Predicted, c.Observed
				if c.Never {
					p = math.Inf(1)
				}
				if o == 0 {
					o = math.Inf(1)
				}
				cpuPred[be.Series], cpuObs[be.Series] = append(cpuPred[be.Series], p), append(cpuObs[be.Series], o)
				if c.Amortized > 0 {
					cpuAm[be.Series] = append(cpuAm[be.Series], c.Amortized)
				}
			}
		}
		for _, a := range s.Autos {
			auto[a.Group] = append(auto[a.Group], a.Ratio)
			if a.CPURatio > 0 {
				cpuAuto[a.Group] = append(cpuAuto[a.Group], a.CPURatio)
			}
		}
	}
	for i := range r.Autos {
		r.Autos[i].RatioCI = interval90(auto[r.Autos[i].Group])
		r.Autos[i].CPURatioCI = interval90(cpuAuto[r.Autos[i].Group])
	}
	for i := range r.BreakEvens {
		be := &r.BreakEvens[i]
		be.PredictedCI, be.ObservedCI = interval90(pred[be.Series]), interval90(obs[be.Series])
		if be.CPU != nil {
			be.CPU.PredictedCI, be.CPU.ObservedCI = interval90(cpuPred[be.Series]), interval90(cpuObs[be.Series])
			be.CPU.AmortizedCI = interval90(cpuAm[be.Series])
		}
	}
}

// interval90 is the 5th and 95th percentiles (nearest rank) of xs, with
// +Inf written as -1.
func interval90(xs []float64) [2]float64 {
	if len(xs) == 0 {
		return [2]float64{}
	}
	v := slices.Clone(xs)
	slices.Sort(v)
	at := func(q float64) float64 {
		x := quantile.Sorted(v, q)
		if math.IsInf(x, 1) {
			return -1
		}
		return x
	}
	return [2]float64{at(0.05), at(0.95)}
}

// pairedRatios returns, per batch size, processes over goroutines
// throughput of the runs of one repeat (which ran back to back).
func (r *Result) pairedRatios(gGroup, pGroup string) map[int][]float64 {
	return r.paired(gGroup, pGroup, func(rec Record) float64 { return rec.DocsPerS }, func(g, p float64) float64 { return p / g })
}

// paired returns, per batch size, ratio(goroutines' value, processes'
// value) of the two runs of each repeat (which ran back to back), over the
// runs without error whose value is above zero.
func (r *Result) paired(gGroup, pGroup string, value func(Record) float64, ratio func(g, p float64) float64) map[int][]float64 {
	type at struct{ batch, repeat int }
	g := map[at]float64{}
	for _, rec := range r.Records {
		if rec.Error == "" && rec.BatchSize > 0 && rec.Group() == gGroup && value(rec) > 0 {
			g[at{rec.BatchSize, rec.Repeat}] = value(rec)
		}
	}
	out := map[int][]float64{}
	for _, rec := range r.Records {
		if rec.Error == "" && rec.BatchSize > 0 && rec.Group() == pGroup && value(rec) > 0 {
			if y, ok := g[at{rec.BatchSize, rec.Repeat}]; ok {
				out[rec.BatchSize] = append(out[rec.BatchSize], ratio(y, value(rec)))
			}
		}
	}
	return out
}

// crossing solves (a_g + c_g b) / (a_p + c_p b) = level for b, the batch
// size where processes reach level x goroutines' throughput (per-batch
// times scale inversely with throughput at equal workers). never is set
// when no batch size reaches it; b is at least 1.
func crossing(g, p Fit, level float64) (b float64, never bool) {
	num := level*p.AUs - g.AUs
	den := g.CUs - level*p.CUs
	switch {
	case num <= 0 && den >= 0:
		return 1, false // already there at any size
	case den <= 0:
		return 0, true
	}
	return max(num/den, 1), false
}

// observedCrossing is the first batch size where the observed ratio,
// made non-decreasing in batch size (Monotone), reaches level,
// interpolated in log batch size from the size before. Monotone keeps one
// lucky run at a small batch size from setting the crossing.
func observedCrossing(rs []Ratio, level float64) float64 {
	ys := make([]float64, len(rs))
	for i, r := range rs {
		ys[i] = r.Observed
	}
	ys = Monotone(ys)
	for i, r := range rs {
		if ys[i] < level {
			continue
		}
		if i == 0 {
			return float64(r.Batch)
		}
		prev := rs[i-1]
		f := (level - ys[i-1]) / (ys[i] - ys[i-1])
		lb := math.Log(float64(prev.Batch)) + f*(math.Log(float64(r.Batch))-math.Log(float64(prev.Batch)))
		return math.Exp(lb)
	}
	return 0
}

// Monotone returns the non-decreasing sequence closest to ys in least
// squares (isotonic regression, pool adjacent violators): runs that break
// the order are replaced by their mean.
func Monotone(ys []float64) []float64 {
	type block struct {
		sum float64
		n   int
	}
	var bs []block
	for _, y := range ys {
		bs = append(bs, block{y, 1})
		for len(bs) > 1 {
			a, b := bs[len(bs)-2], bs[len(bs)-1]
			if a.sum/float64(a.n) <= b.sum/float64(b.n) {
				break
			}
			bs = append(bs[:len(bs)-2], block{a.sum + b.sum, a.n + b.n})
		}
	}
	out := make([]float64, 0, len(ys))
	for _, b := range bs {
		for range b.n {
			out = append(out, b.sum/float64(b.n))
		}
	}
	return out
}
