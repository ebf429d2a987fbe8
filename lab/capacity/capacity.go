// Package capacity answers how many workers one coordinator and one broker
// (or the 3-node cluster) can feed: it measures what each part of a fleet
// spends in CPU per batch (coordinator, each broker node, the workers'
// transport), fits it against the bytes on the wire, predicts throughput
// against worker count for a job and a resource layout, names the knee and
// the resource that causes it, and checks the prediction in the same run
// against emulated fleets: workers that wait instead of computing (the
// sleep workload), so 64 of them on a small machine behave like 64 remote
// cores.
//
// It does not start fleets (lab does, through Config.Start) and renders
// nothing (report does).
package capacity

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/quantile"
)

// Config is one capacity experiment. The zero value of every field is its
// default unless said otherwise.
type Config struct {
	// Job is the job shape: BatchSize, Params.SpinCostNs (the compute per
	// document to emulate), Params.OutBytes, codec and in-flight batches.
	// Workload is set to sleep.
	Job coordinator.Config
	// Workers is the worker counts the emulated fleets are measured at;
	// nil = 1, 4, 16, 64.
	Workers []int
	// KneeAt, when positive, adds the knee series: the same job with the
	// compute per document chosen so this machine's predicted knee falls at
	// KneeAt workers, so the validation sees both sides of it.
	KneeAt float64
	// Cluster also calibrates and validates on a 3-node broker cluster.
	Cluster bool
	// Layouts are predicted for the job; nil = none.
	Layouts []Layout
	// Coordinators, when more than one, also runs the knee series (the
	// job's when there is none) at the most workers with its input sharded
	// over this many coordinator processes (Sharded), against the model's
	// prediction for as many coordinators.
	Coordinators int
	// Sharded runs job on fleet f's workers, its input the first docs lines
	// of the file docsFile, sharded over coordinators processes; required
	// with Coordinators > 1.
	Sharded func(ctx context.Context, f Fleet, job coordinator.Config, workers, coordinators int, docsFile string, docs int64) (*coordinator.Stats, error)
	// CalibrateWorkers is the workers of the calibration runs (no compute,
	// every part of the fleet saturated); 0 = 8, rounded up to a multiple of
	// the nodes.
	CalibrateWorkers int
	// RunTime is the aimed wall time of each run; 0 = 2s.
	RunTime time.Duration
	// Repeats is the runs of each series at each worker count, in turn;
	// their medians are what the goals read. 0 = 1.
	Repeats int
	// Docs are the documents, cycled as long as a run needs; required.
	Docs []string
	// Start brings up a fleet of nodes broker processes and workers worker
	// processes spread over them; stop ends it. Required.
	Start func(ctx context.Context, nodes, workers int) (f Fleet, stop func(), err error)
	// CPU reads a child process's CPU time; required.
	CPU ProcessCPU
	// Progress, when set, is told what runs next.
	Progress func(what string)
	Log      *slog.Logger
}

// DefaultWorkers is the worker counts validated by default.
var DefaultWorkers = []int{1, 4, 16, 64}

// MaxWorkers bounds a validated worker count: each is a process.
const MaxWorkers = 1024

func (c Config) withDefaults() Config {
	if len(c.Workers) == 0 {
		c.Workers = DefaultWorkers
	}
	c.Workers = slices.Sorted(slices.Values(c.Workers))
	c.Workers = slices.Compact(c.Workers)
	if c.CalibrateWorkers == 0 {
		c.CalibrateWorkers = 8
	}
	if c.RunTime == 0 {
		c.RunTime = 2 * time.Second
	}
	if c.Repeats == 0 {
		c.Repeats = 1
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Progress == nil {
		c.Progress = func(string) {}
	}
	c.Job.Workload = "sleep"
	return c
}

// Validate checks the configuration, naming the key at fault.
func (c Config) Validate() error {
	bad := func(key string, v any, why string) error {
		return fmt.Errorf("%w: %s=%v: %s", coordinator.ErrInvalidConfig, key, v, why)
	}
	for _, w := range c.Workers {
		if w < 1 || w > MaxWorkers {
			return bad("validate_workers", w, fmt.Sprintf("must be between 1 and %d (each is a process)", MaxWorkers))
		}
	}
	switch {
	case c.KneeAt < 0 || math.IsInf(c.KneeAt, 0) || math.IsNaN(c.KneeAt):
		return bad("knee_at", c.KneeAt, "must be positive (0 = no knee series)")
	case c.RunTime < 0:
		return bad("run_time", c.RunTime, "must be positive")
	case c.Repeats < 0:
		return bad("repeats", c.Repeats, "must be at least 1")
	case c.CalibrateWorkers < 0:
		return bad("calibrate_workers", c.CalibrateWorkers, "must be positive")
	case len(c.Docs) == 0:
		return bad("docs", 0, "no documents")
	case c.Start == nil || c.CPU == nil:
		return fmt.Errorf("%w: capacity needs a fleet starter and a CPU clock", coordinator.ErrInvalidConfig)
	case c.Coordinators < 0:
		return bad("validate_coordinators", c.Coordinators, "must be positive (0 or 1 = don't)")
	case c.Coordinators > 1 && c.Sharded == nil:
		return fmt.Errorf("%w: capacity needs a sharded runner to validate %d coordinators", coordinator.ErrInvalidConfig, c.Coordinators)
	}
	job := c.Job
	job.Workload = "sleep"
	return job.Validate()
}

// Result is what Run measured and predicted.
type Result struct {
	Shape Shape `json:"job"`
	// Brokers is one entry per broker shape measured: one node, then the
	// 3-node cluster when Config.Cluster.
	Brokers []Brokers `json:"brokers"`
	// Layouts is the job predicted on each Config.Layouts, from the costs
	// of the broker shape with as many nodes.
	Layouts []Prediction `json:"layouts,omitempty"`
	// Memory is the fleet's resident memory at the largest worker count.
	Memory Memory `json:"memory"`
	// Notes say what was not run, and why.
	Notes []string `json:"notes,omitempty"`
	// Load is the machine's load average (1, 5, 15 minutes) when the run
	// began and when it ended: other work on the machine skews it.
	Load        [2]string `json:"load_average"`
	Interrupted bool      `json:"interrupted,omitempty"`
}

// Brokers is one broker shape's calibration and validation.
type Brokers struct {
	Nodes       int      `json:"nodes"`
	Costs       Costs    `json:"costs"`
	Calibration []Sample `json:"calibration"`
	Series      []Series `json:"series"`
}

// Series is one job shape validated at every worker count against this
// machine's prediction.
type Series struct {
	Name       string     `json:"name"` // job, or knee
	Prediction Prediction `json:"prediction"`
	Points     []Measured `json:"points"`
	// Coordinators is how many coordinator processes the series' input was
	// sharded over; 0 = one.
	Coordinators int `json:"coordinators,omitempty"`
	// KneeNow is the predicted knee on the cores measured before the most
	// workers' runs (their median), the runs the measured knee is read from.
	KneeNow float64 `json:"predicted_knee_now_workers,omitempty"`
	// MeasuredKnee is where the measured throughput's asymptotes meet: the
	// plateau (docs/s at the most workers) over one worker's docs/s; 0 when
	// the most workers are still within 10% of linear (no knee reached).
	MeasuredKnee float64 `json:"measured_knee_workers"`
}

// Measured is one worker count of a series: every repeat's run and their
// medians (nearest rank), which the goals read.
type Measured struct {
	Workers int      `json:"workers"`
	Runs    []Sample `json:"runs"`
	// DocsPerS, Predicted, CoresBefore, Busy and Cores are the runs'
	// medians; Error is the median of each run's predicted/measured - 1.
	DocsPerS    float64 `json:"docs_per_s"`
	Predicted   float64 `json:"predicted_docs_per_s"`
	Error       float64 `json:"error"`
	CoresBefore float64 `json:"cores_before"`
	Busy        float64 `json:"busy"`
	Cores       float64 `json:"cores"`
	Limit       string  `json:"predicted_limit"`
	// Efficiency is DocsPerS over the workers times one worker's DocsPerS;
	// 0 when the series has no one-worker point.
	Efficiency float64 `json:"efficiency,omitempty"`
}

// summarize fills m's medians from its runs.
func (m *Measured) summarize() {
	med := func(f func(Sample) float64) float64 {
		var xs []float64
		for _, r := range m.Runs {
			if r.Error == "" {
				xs = append(xs, f(r))
			}
		}
		if len(xs) == 0 {
			return 0
		}
		slices.Sort(xs)
		return quantile.Sorted(xs, 0.5)
	}
	m.DocsPerS = med(func(r Sample) float64 { return r.DocsPerS })
	m.Predicted = med(func(r Sample) float64 { return r.Predicted })
	m.Error = med(Sample.ErrorRatio)
	m.CoresBefore = med(func(r Sample) float64 { return r.CoresBefore })
	m.Busy = med(func(r Sample) float64 { return r.Busy })
	m.Cores = med(func(r Sample) float64 { return r.Cores })
	if len(m.Runs) > 0 {
		m.Limit = m.Runs[len(m.Runs)/2].Limit
	}
}

// finish summarizes every point, their efficiency and the measured knee.
func (s *Series) finish() {
	for i := range s.Points {
		s.Points[i].summarize()
	}
	if len(s.Points) == 0 || s.Points[0].Workers != 1 || s.Points[0].DocsPerS <= 0 {
		return
	}
	one := s.Points[0].DocsPerS
	for i := range s.Points {
		p := &s.Points[i]
		p.Efficiency = p.DocsPerS / (float64(p.Workers) * one)
	}
	if last := s.Points[len(s.Points)-1]; len(s.Points) > 1 && last.Efficiency < 0.9 {
		s.MeasuredKnee = last.DocsPerS / one
	}
}

// Run calibrates and validates each broker shape, then predicts the
// layouts. On an interrupt it returns what was measured with ctx's error.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	job := cfg.Job.WithDefaults()
	res := &Result{Shape: Shape{BatchSize: job.BatchSize, ComputeUs: float64(job.Params.WithDefaults().SpinCostNs) / 1e3, Emulated: true, InFlight: job.InFlight}}
	res.Load[0] = loadAverage()
	defer func() { res.Load[1] = loadAverage() }()
	nodes := []int{1}
	if cfg.Cluster {
		nodes = append(nodes, 3)
	}
	for _, n := range nodes {
		b, err := brokerShape(ctx, cfg, job, n, res)
		if b != nil {
			res.Brokers = append(res.Brokers, *b)
		}
		if err != nil {
			res.Interrupted = ctx.Err() != nil
			return res, err
		}
	}
	for _, l := range cfg.Layouts {
		for _, b := range res.Brokers {
			if b.Nodes == l.Nodes {
				s := res.Shape
				s.Emulated = false // real compute on remote cores: no timer to overshoot
				res.Layouts = append(res.Layouts, Predict(b.Costs, l, s, cfg.Workers))
			}
		}
	}
	return res, nil
}

// brokerShape calibrates on a fleet of n broker nodes, then validates each
// series at every worker count, a fleet of exactly that many workers each
// (spread over the nodes evenly, as the model assumes).
func brokerShape(ctx context.Context, cfg Config, job coordinator.Config, n int, res *Result) (*Brokers, error) {
	b := &Brokers{Nodes: n}
	calW := (cfg.CalibrateWorkers + n - 1) / n * n
	cfg.Progress(fmt.Sprintf("%d broker node(s): calibrating on %d workers", n, calW))
	f, stop, err := cfg.Start(ctx, n, calW)
	if err != nil {
		return nil, err
	}
	b.Costs, b.Calibration, err = calibrate(ctx, cfg, f, job, calW)
	stop()
	if err != nil {
		return b, err
	}
	machine := Layout{Name: "machine", Machine: true, Nodes: n}
	b.Series = append(b.Series, Series{Name: "job", Prediction: Predict(b.Costs, machine, res.Shape, cfg.Workers)})
	if cfg.KneeAt > 0 {
		c := ComputeForKnee(b.Costs, machine, res.Shape, cfg.KneeAt)
		if c <= 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("%s: no knee series: no compute puts the knee at %g workers; a worker's own time per batch (its CPU, the wait's overshoot of %.0f us) and the round trip's latency (%.0f us) alone put it at %.1f",
				nodesName(n), cfg.KneeAt, b.Costs.OvershootUs, b.Costs.LatencyUs, noCompute(b.Costs, machine, res.Shape).Knee))
		} else {
			s := res.Shape
			s.ComputeUs = c
			b.Series = append(b.Series, Series{Name: "knee", Prediction: Predict(b.Costs, machine, s, cfg.Workers)})
		}
	}
	defer b.finish() // also what an interrupted run measured
	for i, w := range cfg.Workers {
		cfg.Progress(fmt.Sprintf("%d broker node(s): %d workers", n, w))
		f, stop, err := cfg.Start(ctx, n, w)
		if err != nil {
			return b, err
		}
		err = validate(ctx, cfg, f, job, b, i)
		if err == nil && i == len(cfg.Workers)-1 && n == 1 {
			res.Memory, err = memoryOf(f)
		}
		if err == nil && i == len(cfg.Workers)-1 && cfg.Coordinators > 1 {
			err = validateSharded(ctx, cfg, f, job, b)
		}
		stop()
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

// finish summarizes every series and predicts its knee on the cores
// measured before its last point.
func (b *Brokers) finish() {
	for i := range b.Series {
		s := &b.Series[i]
		s.finish()
		if len(s.Points) == 0 {
			continue
		}
		if last := s.Points[len(s.Points)-1]; last.CoresBefore > 0 {
			c := b.Costs
			c.Cores = last.CoresBefore
			s.KneeNow = Predict(c, s.Prediction.Layout, s.Prediction.Shape, nil).Knee
		}
	}
}

// noCompute is the prediction for s with the least compute that still
// waits (and so overshoots).
func noCompute(c Costs, l Layout, s Shape) Prediction {
	s.ComputeUs = 1e-9
	return Predict(c, l, s, nil)
}

// validate runs every series at the i-th worker count on fleet f, Repeats
// times in turn, each run against the model's prediction for this machine
// on the cores it gives the fleet right before (coresNow): other work on a
// shared machine moves them from one second to the next.
func validate(ctx context.Context, cfg Config, f Fleet, job coordinator.Config, b *Brokers, i int) error {
	w := cfg.Workers[i]
	machine := Layout{Name: "machine", Machine: true, Nodes: b.Nodes}
	for k := range b.Series {
		b.Series[k].Points = append(b.Series[k].Points, Measured{Workers: w})
	}
	for rep := range cfg.Repeats {
		costs, err := costsNow(ctx, cfg, f, job, w, b.Costs)
		if err != nil {
			return err
		}
		for k := range b.Series {
			s := &b.Series[k]
			j := job
			j.Params.SpinCostNs = max(int64(s.Prediction.Shape.ComputeUs*1e3), 1)
			now := Predict(costs, machine, s.Prediction.Shape, []int{w})
			pred := now.Points[0].DocsPerS
			r, err := measure(ctx, f, cfg.CPU, j, w, docs(cfg.Docs, planDocs(pred, cfg.RunTime, w, j.BatchSize)))
			r.Series, r.Repeat, r.Predicted, r.CoresBefore, r.Limit = s.Name, rep, pred, costs.Cores, now.Points[0].Limit
			r.PredictedCalibrated = s.Prediction.Points[i].DocsPerS
			pt := &s.Points[len(s.Points)-1]
			if err != nil {
				r.Error = err.Error()
				pt.Runs = append(pt.Runs, r)
				return fmt.Errorf("%s series, %d workers: %w", s.Name, w, err)
			}
			cfg.Log.Info("validated", "nodes", b.Nodes, "series", s.Name, "workers", w, "repeat", rep, "predicted", int(pred), "measured", int(r.DocsPerS))
			pt.Runs = append(pt.Runs, r)
		}
	}
	return nil
}

// validateSharded runs the last series (the knee's, else the job's) at
// the most workers with its input sharded over Coordinators processes,
// Repeats times, each against the prediction for as many coordinators on
// this machine's cores measured just before.
func validateSharded(ctx context.Context, cfg Config, f Fleet, job coordinator.Config, b *Brokers) error {
	w, n := cfg.Workers[len(cfg.Workers)-1], cfg.Coordinators
	base := b.Series[len(b.Series)-1]
	layout := Layout{Name: fmt.Sprintf("machine, %d coordinators", n), Machine: true, Nodes: b.Nodes, Coordinators: n}
	s := Series{Name: fmt.Sprintf("%s, %d coordinators", base.Name, n), Prediction: Predict(b.Costs, layout, base.Prediction.Shape, []int{w}), Coordinators: n}
	s.Points = []Measured{{Workers: w}}
	cfg.Progress(fmt.Sprintf("%d broker node(s): %d workers, %d coordinators", b.Nodes, w, n))
	j := job
	j.Params.SpinCostNs = max(int64(base.Prediction.Shape.ComputeUs*1e3), 1)
	// The shards read the same documents from a file (the coordinator
	// processes cannot share this one's memory), written once, before any
	// clock, with room for a machine twice as fast as calibrated.
	most := planDocs(2*s.Prediction.Points[0].DocsPerS, cfg.RunTime, w, j.BatchSize)
	file, err := writeDocs(cfg.Docs, most)
	if err != nil {
		return err
	}
	defer os.Remove(file)
	for rep := range cfg.Repeats {
		costs, err := costsNow(ctx, cfg, f, job, w, b.Costs)
		if err != nil {
			return err
		}
		now := Predict(costs, layout, s.Prediction.Shape, []int{w})
		pred := now.Points[0].DocsPerS
		docs := int64(min(planDocs(pred, cfg.RunTime, w, j.BatchSize), most))
		r, err := measureRun(f, cfg.CPU, j, w, func() (*coordinator.Stats, error) { return cfg.Sharded(ctx, f, j, w, n, file, docs) })
		r.Series, r.Repeat, r.Predicted, r.CoresBefore, r.Limit = s.Name, rep, pred, costs.Cores, now.Points[0].Limit
		r.PredictedCalibrated = s.Prediction.Points[0].DocsPerS
		if err != nil {
			r.Error = err.Error()
			s.Points[0].Runs = append(s.Points[0].Runs, r)
			b.Series = append(b.Series, s)
			return fmt.Errorf("%s, %d workers: %w", s.Name, w, err)
		}
		cfg.Log.Info("validated", "nodes", b.Nodes, "series", s.Name, "workers", w, "repeat", rep, "predicted", int(pred), "measured", int(r.DocsPerS))
		s.Points[0].Runs = append(s.Points[0].Runs, r)
	}
	b.Series = append(b.Series, s)
	return nil
}

// saturating is the fewest workers whose runs with no compute keep every
// part of the fleet busy: half the calibration's.
func saturating(cfg Config) int { return max(cfg.CalibrateWorkers/2, 1) }

// costsNow is c with the cores this machine gives the fleet now: the CPU
// of a short run with no compute on its w workers, which keeps every part
// of the fleet as busy as the machine lets it. With fewer workers than
// saturate, c as calibrated.
func costsNow(ctx context.Context, cfg Config, f Fleet, job coordinator.Config, w int, c Costs) (Costs, error) {
	if w < saturating(cfg) {
		return c, nil
	}
	job.Params.SpinCostNs = 1
	r, err := measure(ctx, f, cfg.CPU, job, w, docs(cfg.Docs, planDocs(c.SaturatedDocsPerS, min(cfg.RunTime/2, time.Second), w, job.BatchSize)))
	if err != nil {
		return c, fmt.Errorf("cores available to %d workers: %w", w, err)
	}
	c.Cores = r.Cores
	return c, nil
}

// planDocs is the documents for a run of about d at rate docs/s, in whole
// rounds (every worker the same number of full batches, so no worker idles
// behind a partial last round), at least 4 rounds.
func planDocs(rate float64, d time.Duration, workers, batch int) int {
	round := workers * batch
	rounds := int(math.Ceil(rate * d.Seconds() / float64(round)))
	return max(rounds, 4) * round
}

// writeDocs writes n documents, base cycled, one per line, to a new
// temporary file and returns its path.
func writeDocs(base []string, n int) (string, error) {
	f, err := os.CreateTemp("", "ferry-capacity-docs-*.txt")
	if err != nil {
		return "", err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := range n {
		w.WriteString(base[i%len(base)])
		w.WriteByte('\n')
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("capacity: write the shards' documents: %w", err)
	}
	return f.Name(), nil
}

// docs is n documents, base cycled.
func docs(base []string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = base[i%len(base)]
	}
	return out
}
