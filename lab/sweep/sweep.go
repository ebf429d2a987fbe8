// Package sweep measures where a process boundary pays for itself: it runs
// a grid of batch sizes, worker counts, codecs, modes and workload
// parameters through the coordinator, in a seeded random order with
// interleaved repeats, records every run, summarises each point by its
// median and spread, and fits the break-even model t(b) = a + c*b.
//
// It does not start brokers or worker processes (cmd/ferry does, once per
// sweep) and it renders nothing (report does).
package sweep

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/sink"
	"github.com/ferrylab/ferry/workload"
	"github.com/nats-io/nats.go"
)

// Point is one cell of the grid.
type Point struct {
	Mode      string        `json:"mode"`
	Workers   int           `json:"workers"`
	BatchSize int           `json:"batch_size"` // 0 = auto (the coordinator adapts it)
	Codec     string        `json:"codec"`
	Workload  string        `json:"workload"`
	SpinCost  time.Duration `json:"spin_cost_ns"` // spin: CPU per document; 0 = the workload's default
	OutBytes  int           `json:"out_bytes"`    // spin: output bytes per document; 0 = default
	DocBytes  int           `json:"doc_bytes"`    // bytes per generated document; 0 = DocWords words
}

// Key names the point in benchstat's key=value style.
func (p Point) Key() string {
	return p.Group() + "/batch=" + p.Batch()
}

// Batch is the batch size as text, "auto" for 0.
func (p Point) Batch() string {
	if p.BatchSize == 0 {
		return "auto"
	}
	return strconv.Itoa(p.BatchSize)
}

// Group is the key without the batch size: the points one fit covers.
func (p Point) Group() string {
	return p.Series() + "/mode=" + p.Mode
}

// Series is the key without mode and batch size: what goroutines and
// processes are compared on.
func (p Point) Series() string {
	var b strings.Builder
	fmt.Fprintf(&b, "workload=%s", p.Workload)
	if p.SpinCost > 0 {
		fmt.Fprintf(&b, "/spin_cost=%s", p.SpinCost)
	}
	if p.OutBytes > 0 {
		fmt.Fprintf(&b, "/out_bytes=%d", p.OutBytes)
	}
	if p.DocBytes > 0 {
		fmt.Fprintf(&b, "/doc_bytes=%d", p.DocBytes)
	}
	fmt.Fprintf(&b, "/codec=%s/workers=%d", p.Codec, p.Workers)
	return b.String()
}

// Grid is what to sweep; every combination of the lists is one point.
// Empty lists take the defaults named on each field.
type Grid struct {
	Modes      []string        // default goroutines, processes
	Workers    []int           // default 1 .. 2 x GOMAXPROCS
	BatchSizes []int           // default 1, 4, 16, 64, 256, 1024; 0 = auto
	Codecs     []string        // default packed
	Workload   string          // default embed
	SpinCosts  []time.Duration // spin only; default the workload's
	OutBytes   []int           // spin only; default the workload's
	DocBytes   []int           // default 0 (DocWords words)
	Params     workload.Params // other workload parameters, shared by every point
	DocWords   int             // words per generated document; 0 = 100
}

// DefaultBatchSizes is the default batch-size axis.
var DefaultBatchSizes = []int{1, 4, 16, 64, 256, 1024}

// WithDefaults fills the empty axes.
func (g Grid) WithDefaults() Grid {
	if len(g.Modes) == 0 {
		g.Modes = []string{coordinator.ModeGoroutines, coordinator.ModeProcesses}
	}
	if len(g.Workers) == 0 {
		for w := 1; w <= 2*runtime.GOMAXPROCS(0); w++ {
			g.Workers = append(g.Workers, w)
		}
	}
	if len(g.BatchSizes) == 0 {
		g.BatchSizes = DefaultBatchSizes
	}
	if len(g.Codecs) == 0 {
		g.Codecs = []string{"packed"}
	}
	if g.Workload == "" {
		g.Workload = "embed"
	}
	if len(g.SpinCosts) == 0 {
		g.SpinCosts = []time.Duration{0}
	}
	if len(g.OutBytes) == 0 {
		g.OutBytes = []int{0}
	}
	if len(g.DocBytes) == 0 {
		g.DocBytes = []int{0}
	}
	if g.DocWords == 0 {
		g.DocWords = 100
	}
	return g
}

// Points lists every combination, in a fixed order.
func (g Grid) Points() []Point {
	g = g.WithDefaults()
	var out []Point
	for _, sc := range g.SpinCosts {
		for _, ob := range g.OutBytes {
			for _, db := range g.DocBytes {
				for _, c := range g.Codecs {
					for _, w := range g.Workers {
						for _, m := range g.Modes {
							for _, b := range g.BatchSizes {
								out = append(out, Point{Mode: m, Workers: w, BatchSize: b, Codec: c,
									Workload: g.Workload, SpinCost: sc, OutBytes: ob, DocBytes: db})
							}
						}
					}
				}
			}
		}
	}
	return out
}

// MaxWorkers is the largest worker count of the grid: the pool size a
// processes sweep needs.
func (g Grid) MaxWorkers() int {
	return slices.Max(g.WithDefaults().Workers)
}

// Config is one sweep. The zero value of every field is its default.
type Config struct {
	Grid
	Repeats   int           // runs of each point; 0 = 3
	Seed      uint64        // run order and corpus; 0 = 1
	PointTime time.Duration // aimed wall time of one run; 0 = 300ms
	// Job carries the coordinator settings shared by every run (in-flight,
	// timeouts, overhead target, limits). Workload, batch size, workers and
	// codec come from each point.
	Job coordinator.Config
	// NC is the connection to the broker the worker pool listens on; needed
	// when Modes holds processes. The pool must have MaxWorkers() workers.
	NC *nats.Conn
	// CPU reads the CPU time used so far by every process a run may use
	// (this one, the embedded broker, the worker pool); each run's CPU per
	// document is the difference across it. nil = CPU not measured (no
	// CPU break-even).
	CPU func() (time.Duration, bool)
	// HopCPU is the CPU of one batch's hop through the broker, measured
	// (coordinator.Config.BatchCPU): processes' auto points hold it under
	// the overhead target. 0 = they size on stage times.
	HopCPU time.Duration
	Log    *slog.Logger // nil = discard
	// OnRecord, when set, gets every finished run with the count done and
	// the total planned (for progress and the records file). An error from
	// it stops the sweep.
	OnRecord func(r Record, done, total int) error
}

func (c Config) withDefaults() Config {
	c.Grid = c.Grid.WithDefaults()
	if c.Repeats == 0 {
		c.Repeats = 3
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.PointTime == 0 {
		c.PointTime = 300 * time.Millisecond
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks the grid before anything runs.
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(key string, v any, why string) error {
		return fmt.Errorf("%w: %s=%v: %s", coordinator.ErrInvalidConfig, key, v, why)
	}
	for _, m := range c.Modes {
		if !slices.Contains(coordinator.Modes(), m) {
			return bad("modes", m, "not a mode")
		}
		if m == coordinator.ModeProcesses && c.NC == nil {
			return bad("modes", m, "processes needs a NATS connection")
		}
	}
	for _, w := range c.Workers {
		if w < 1 {
			return bad("worker_counts", w, "must be at least 1")
		}
	}
	for _, b := range c.BatchSizes {
		if b < 0 {
			return bad("batch_sizes", b, "must be at least 1 (or auto)")
		}
	}
	switch {
	case c.Repeats < 1:
		return bad("repeats", c.Repeats, "must be at least 1")
	case c.PointTime < 0:
		return bad("point_time", c.PointTime, "must be positive")
	}
	for _, p := range c.Points() {
		if err := c.jobConfig(p).Validate(); err != nil {
			return err
		}
	}
	return nil
}

// jobConfig is the coordinator configuration of one point.
func (c Config) jobConfig(p Point) coordinator.Config {
	j := c.Job
	j.Workload = p.Workload
	j.Params = c.Params
	j.Params.SpinCostNs, j.Params.OutBytes = int64(p.SpinCost), p.OutBytes
	j.Workers, j.MaxWorkers, j.Codec = p.Workers, p.Workers, p.Codec
	j.BatchSize, j.AutoBatch = p.BatchSize, p.BatchSize == 0
	if j.AutoBatch {
		j.BatchSize = 16
		if p.Mode == coordinator.ModeProcesses {
			j.BatchCPU = c.HopCPU
		}
	}
	j.OnProgress = nil
	return j
}

// Run runs the sweep: a short calibration per workload setting to choose
// each point's document count, then Repeats rounds, each a fresh seeded
// shuffle of every point, where the modes of one point (same settings and
// batch size) run back to back in a random order, so their throughput
// ratio is measured on the same machine state. On an interrupt it returns
// what was measured with ctx's error.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &sweeper{cfg: cfg, cal: map[string]calibration{}, gens: map[int]*corpus.Generator{}, texts: map[int][]string{}}
	points := cfg.Points()
	res := &Result{Seed: cfg.Seed, Repeats: cfg.Repeats, Target: cfg.Job.OverheadTarget}
	if err := s.warmUp(ctx); err != nil {
		return res, err
	}
	plans := make([]plan, len(points))
	for i, p := range points {
		pl, err := s.plan(ctx, p)
		if err != nil {
			return res, err
		}
		plans[i] = pl
	}
	// A point's document count is fixed at its first run, from its plan
	// and how much slower than planned the runs so far were (a busy
	// machine runs slower than the calibration's best), so the sweep's
	// length holds.
	docs := make([]int64, len(points))
	slow := 1.0
	total := len(points) * cfg.Repeats
	seq := 0
	blocks := blocksOf(points)
	series := make([]string, len(blocks))
	for i, b := range blocks {
		series[i] = points[b[0]].Series()
	}
	for rep := range cfg.Repeats {
		for _, i := range roundOrder(blocks, series, cfg.Seed, rep) {
			p := points[i]
			if docs[i] == 0 {
				docs[i] = wholeRounds(max(int64(float64(plans[i].n)/slow), plans[i].lo), p)
			}
			st, err := s.run(ctx, p, docs[i])
			if err == nil && st.Wall > 0 {
				planned := float64(cfg.PointTime) * float64(docs[i]) / float64(plans[i].n)
				slow = min(max(0.7*slow+0.3*float64(st.Wall)/planned, 0.25), 8)
			}
			if ctx.Err() != nil {
				res.finish(points)
				res.Interrupted = true
				return res, fmt.Errorf("sweep interrupted after %d of %d runs: %w", seq, total, ctx.Err())
			}
			rec := newRecord(seq, rep, p, st, err)
			seq++
			res.Records = append(res.Records, rec)
			if err != nil {
				cfg.Log.Warn("sweep run failed", "point", p.Key(), "err", err)
			}
			if cfg.OnRecord != nil {
				if err := cfg.OnRecord(rec, seq, total); err != nil {
					res.finish(points)
					return res, err
				}
			}
		}
	}
	res.finish(points)
	return res, nil
}

// blocksOf groups the indexes of points that differ only in mode: a
// block's modes run back to back, so their comparison sees the same
// machine.
func blocksOf(points []Point) [][]int {
	var blocks [][]int
	at := map[string]int{}
	for i, p := range points {
		k := p.Series() + "/batch=" + p.Batch()
		j, ok := at[k]
		if !ok {
			j = len(blocks)
			at[k] = j
			blocks = append(blocks, nil)
		}
		blocks[j] = append(blocks[j], i)
	}
	return blocks
}

// roundOrder is round rep's run order: the series (series[i] is block i's)
// in a seeded random order, each series' blocks shuffled within it, the
// modes within each block shuffled too. A series' runs stay together, so
// the batch sizes compared with each other (auto against the best fixed
// size) run seconds apart in every round, and a block's modes back to back.
func roundOrder(blocks [][]int, series []string, seed uint64, rep int) []int {
	rng := rand.New(rand.NewPCG(seed, uint64(rep)))
	var names []string
	by := map[string][]int{}
	for i, s := range series {
		if _, ok := by[s]; !ok {
			names = append(names, s)
		}
		by[s] = append(by[s], i)
	}
	var out []int
	for _, si := range rng.Perm(len(names)) {
		bs := by[names[si]]
		for _, k := range rng.Perm(len(bs)) {
			b := blocks[bs[k]]
			for _, m := range rng.Perm(len(b)) {
				out = append(out, b[m])
			}
		}
	}
	return out
}

type sweeper struct {
	cfg  Config
	cal  map[string]calibration
	gens map[int]*corpus.Generator // by document bytes
	// texts holds the first documents of each generator, generated once
	// and outside every run's timing, up to textBudget bytes in all.
	// Generating costs the coordinator about 5 us of CPU per document; on
	// shared cores it competed with the workers in every run (as in ferry
	// run, which pregenerates for the same reason).
	texts     map[int][]string
	textBytes int64
}

// textBudget bounds the generated text a sweep keeps in memory; runs
// longer than it generate as they go.
const textBudget = 256 << 20

// calibration is what a workload setting costs, measured once per sweep.
type calibration struct {
	perDoc   time.Duration // goroutines, one worker, batch 64: wall per document
	perBatch time.Duration // processes, one worker, batch 1: wall per document minus perDoc
}

func (s *sweeper) run(ctx context.Context, p Point, docs int64) (*coordinator.Stats, error) {
	cfg := s.cfg.jobConfig(p)
	backend, err := coordinator.NewBackend(coordinator.BackendConfig{
		Mode: p.Mode, Job: cfg, Conn: s.cfg.NC, Expect: p.Workers, Log: s.cfg.Log,
	})
	if err != nil {
		return nil, err
	}
	gen, ok := s.gens[p.DocBytes]
	if !ok {
		// Building the vocabulary costs about 100ms; document i depends
		// only on (seed, i), so one generator serves every run.
		gen, err = corpus.Generated(corpus.GenConfig{Seed: s.cfg.Seed, Docs: math.MaxInt64, Words: s.cfg.DocWords, DocBytes: p.DocBytes})
		if err != nil {
			return nil, err
		}
		s.gens[p.DocBytes] = gen
	}
	var src corpus.Source = gen.Head(docs) // Len lets auto batching shrink batches near the end
	if texts := s.pregenerated(gen, p.DocBytes, docs); texts != nil {
		src = corpus.Slice(texts)
	}
	if s.cfg.CPU == nil {
		return coordinator.Run(ctx, cfg, src, backend, sink.Discard{})
	}
	cpu0, ok0 := s.cfg.CPU()
	st, err := coordinator.Run(ctx, cfg, src, backend, sink.Discard{})
	if cpu1, ok1 := s.cfg.CPU(); st != nil && ok0 && ok1 {
		st.CPU = cpu1 - cpu0
	}
	return st, err
}

// pregenerated returns the first n documents of gen, generating those not
// yet held, or nil when they would not fit the budget.
func (s *sweeper) pregenerated(gen *corpus.Generator, docBytes int, n int64) []string {
	have := s.texts[docBytes]
	for i := int64(len(have)); i < n; i++ {
		if s.textBytes >= textBudget {
			s.texts[docBytes] = have
			return nil
		}
		t := gen.Doc(i).Text
		have = append(have, t)
		s.textBytes += int64(len(t))
	}
	s.texts[docBytes] = have
	return have[:n]
}

// warmUp runs every worker of the pool once (first batches pay for spin's
// calibration and cold caches) so no measured run does.
func (s *sweeper) warmUp(ctx context.Context) error {
	if !slices.Contains(s.cfg.Modes, coordinator.ModeProcesses) {
		return nil
	}
	w := s.cfg.MaxWorkers()
	p := Point{Mode: coordinator.ModeProcesses, Workers: w, BatchSize: 1, Codec: s.cfg.Codecs[0], Workload: s.cfg.Workload,
		SpinCost: s.cfg.SpinCosts[0], OutBytes: s.cfg.OutBytes[0], DocBytes: s.cfg.DocBytes[0]}
	_, err := s.run(ctx, p, int64(16*w))
	if err != nil {
		return fmt.Errorf("warm up %d workers: %w", w, err)
	}
	return nil
}

// measure runs p with a doubling document count until a run takes at
// least 50ms, runs that count once more, and returns the lesser wall time
// per document (other load only ever slows a run down). A first small run
// is discarded: it pays for the workload's one-time setup (spin calibrates
// itself on first use, about 25ms) and cold caches.
func (s *sweeper) measure(ctx context.Context, p Point) (time.Duration, error) {
	if _, err := s.run(ctx, p, 64); err != nil {
		return 0, fmt.Errorf("calibrate %s: %w", p.Key(), err)
	}
	for n := int64(128); ; n *= 2 {
		st, err := s.run(ctx, p, n)
		if err != nil {
			return 0, fmt.Errorf("calibrate %s: %w", p.Key(), err)
		}
		if st.Wall >= 50*time.Millisecond || n >= 1<<20 {
			again, err := s.run(ctx, p, n)
			if err != nil {
				return 0, fmt.Errorf("calibrate %s: %w", p.Key(), err)
			}
			return min(st.Wall, again.Wall) / time.Duration(n), nil
		}
	}
}

// wholeRounds rounds a fixed batch size's document count up to whole
// rounds, every worker the same number of full batches, so no run ends with
// a partial round: workers idle behind the last batches would make large
// batch sizes look slower than their per-batch cost (t = a + c*b) says, and
// bend the fit and the observed break-even.
func wholeRounds(n int64, p Point) int64 {
	if p.BatchSize <= 0 {
		return n // auto sizes its own tail
	}
	r := int64(p.Workers * p.BatchSize)
	return (n + r - 1) / r * r
}

// plan chooses p's document count so one run takes about PointTime, from
// a calibration of its workload setting: per = (perDoc + perBatch/b) /
// min(workers, cores). It keeps at least two batches per worker when that
// fits in a second.
func (s *sweeper) plan(ctx context.Context, p Point) (plan, error) {
	key := p.Series()
	key = key[:strings.Index(key, "/codec=")]
	c, ok := s.cal[key]
	if !ok {
		base := Point{Mode: coordinator.ModeGoroutines, Workers: 1, BatchSize: 64, Codec: p.Codec, Workload: p.Workload,
			SpinCost: p.SpinCost, OutBytes: p.OutBytes, DocBytes: p.DocBytes}
		per, err := s.measure(ctx, base)
		if err != nil {
			return plan{}, err
		}
		c.perDoc = per
		if slices.Contains(s.cfg.Modes, coordinator.ModeProcesses) {
			base.Mode, base.BatchSize = coordinator.ModeProcesses, 1
			one, err := s.measure(ctx, base)
			if err != nil {
				return plan{}, err
			}
			c.perBatch = max(one-per, 0)
		}
		s.cal[key] = c
		s.cfg.Log.Debug("calibrated", "setting", key, "per_doc", c.perDoc, "per_batch", c.perBatch)
	}
	b := p.BatchSize
	if b == 0 {
		b = 64
	}
	per := float64(c.perDoc)
	switch p.Mode {
	case coordinator.ModeProcesses:
		per += float64(c.perBatch) / float64(b)
	case coordinator.ModeCodec:
		per *= 1.2
	case coordinator.ModeSerial, coordinator.ModeGIL:
		per *= float64(p.Workers) // one lane's worth of throughput
	}
	per /= float64(min(p.Workers, runtime.GOMAXPROCS(0)))
	per = max(per, 1)
	n := int64(float64(s.cfg.PointTime) / per)
	lo := int64(2 * p.Workers * b)
	if oneSec := int64(float64(time.Second) / per); lo > oneSec {
		lo = max(oneSec, int64(p.Workers*b))
	}
	return plan{n: max(n, 16), lo: max(lo, 16)}, nil
}

// plan is a point's document count for PointTime (n) and its floor (lo).
type plan struct{ n, lo int64 }
