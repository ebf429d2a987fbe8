// Package lab holds ferry's experiments built on the engine: Run compares
// the execution modes on one job (ferry run and ferry coordinator), and
// its subpackages measure the transport floor (floor), sweep the break-even
// batch size (sweep), and run the I/O row (llm) and the hybrid pipeline
// (pipeline).
//
// It owns what an experiment needs around a job: the local fleet when one
// is wanted, the corpus generated before the timings, one CPU clock per
// mode, the floor after a processes run, and the report. It parses no
// flags (cmd/ferry does) and renders nothing itself (report does).
package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/internal/machine"
	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/ferrylab/ferry/lab/floor"
	"github.com/ferrylab/ferry/metrics"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/report"
	"github.com/ferrylab/ferry/shm"
	"github.com/ferrylab/ferry/sink"
	"github.com/ferrylab/ferry/workload"
	"github.com/nats-io/nats.go"
)

// Config configures Run: one job, run once per mode.
type Config struct {
	Job      coordinator.Config // the job; Workers is the workers of every mode
	Modes    []string           // in order; at least one
	Dispatch []string           // how processes mode sends batches, one run each; nil = request
	// DataPlane is what carries processes mode's batches (request
	// dispatch), one run each: coordinator.PlaneNATS, coordinator.PlaneShm
	// (shared memory with the local fleet's workers; the run is named
	// processes/shm), or both; nil = nats.
	DataPlane []string
	JobID     string // dispatch=jetstream's job ID; "" = a new random one
	Input     Input  // the documents
	Out       string // write the last mode's results to this file; "" = none

	// Coordinators shards processes mode (request dispatch) over this many
	// coordinator processes feeding the same workers, each over a range of
	// the input, merged in input order into one report (lab/shards.go);
	// 0 or 1 = this process alone.
	Coordinators int

	// Where processes mode runs. With NATSURL empty, Run starts a local
	// fleet (Fleet: embedded broker, Job.Workers worker processes, the
	// echo). With NATSURL set, workers are already attached to that broker
	// (ferry coordinator): Run connects as Auth, waits for ExpectWorkers of
	// them, and measures the floor with an echo that logs in as Auth and
	// answers on this login's echo subject (proto.CoordinatorEchoSubject),
	// which a broker's coordinator role may serve.
	Fleet         fleet.Config
	NATSURL       string
	Auth          natsconn.Auth
	ExpectWorkers int    // with NATSURL; 0 = Job.Workers
	MetricsAddr   string // with NATSURL: serve the coordinator's Prometheus metrics here; "" = off

	// Repeat runs the modes this many rounds, interleaved (lab/repeat.go);
	// the report adds medians and paired ratios. 0 or 1 = once.
	Repeat int
	Wide   bool // the text report's every column, not the narrow table

	Report   map[string]any // the configuration echoed in the report
	Format   string         // report format (report.Formats); "" = text
	Stdout   io.Writer      // where the report goes; nil = discard
	Progress Progress       // nil = none
	Logger   *slog.Logger   // nil = discard
}

// Progress makes a progress display for one mode's run (total = -1 when
// unknown); it returns what to call with the documents done, and what
// ends the display. The command line's bar is one.
type Progress func(mode string, total int64) (set func(int64), done func())

func (c *Config) withDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Stdout == nil {
		c.Stdout = io.Discard
	}
	if len(c.Dispatch) == 0 {
		c.Dispatch = []string{coordinator.DispatchRequest}
	}
	c.Dispatch = slices.Compact(c.Dispatch)
	if len(c.DataPlane) == 0 {
		c.DataPlane = []string{coordinator.PlaneNATS}
	}
	c.DataPlane = slices.Compact(c.DataPlane)
	if c.ExpectWorkers == 0 {
		c.ExpectWorkers = c.Job.Workers
	}
}

// Validate checks the configuration, naming the key at fault.
func (c Config) Validate() error {
	bad := func(key string, v any, why string) error {
		return fmt.Errorf("%w: %s=%v: %s", coordinator.ErrInvalidConfig, key, v, why)
	}
	modes := strings.Join(c.Modes, ",")
	dispatch := []string{coordinator.DispatchRequest, coordinator.DispatchJetStream}
	switch {
	case len(c.Modes) == 0:
		return bad("modes", modes, "no mode given")
	case slices.ContainsFunc(c.Modes, func(m string) bool { return !slices.Contains(coordinator.Modes(), m) }):
		return bad("modes", modes, "want some of "+strings.Join(coordinator.Modes(), ", "))
	case slices.ContainsFunc(c.Dispatch, func(d string) bool { return !slices.Contains(dispatch, d) }):
		return bad("dispatch", strings.Join(c.Dispatch, ","), "want request, jetstream, or both")
	case slices.ContainsFunc(c.DataPlane, func(p string) bool { return p != coordinator.PlaneNATS && p != coordinator.PlaneShm }):
		return bad("data_plane", strings.Join(c.DataPlane, ","), "want nats, shm, or both")
	case c.Coordinators > 1 && slices.Contains(c.DataPlane, coordinator.PlaneShm):
		return bad("coordinators", c.Coordinators, "shared memory is one coordinator's with its workers; use data_plane=nats")
	case c.Repeat < 0:
		return bad("repeat", c.Repeat, "must be positive (0 = once)")
	case c.Coordinators < 0:
		return bad("coordinators", c.Coordinators, "must be positive (0 = one)")
	case c.Coordinators > 1 && slices.Contains(c.Dispatch, coordinator.DispatchJetStream):
		return bad("coordinators", c.Coordinators, "sharding runs request dispatch; jetstream keeps one coordinator per job")
	case c.JobID != "" && !proto.ValidJobID(c.JobID):
		return bad("job_id", c.JobID, "want 1 to 64 letters, digits, '-' or '_'")
	case c.Format != "" && !slices.Contains(report.Formats, c.Format):
		return bad("format", c.Format, "must be one of "+strings.Join(report.Formats, ", "))
	}
	if err := c.Input.Validate(); err != nil {
		return err
	}
	if err := checkOut(c.Out, c.Input); err != nil {
		return err
	}
	return c.Job.Validate()
}

// Run runs the job once per mode, in order, writes the report and returns
// the first error (after the report, so partial results are shown).
func Run(ctx context.Context, cfg Config) error {
	cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	env := runEnv{cfg: cfg, log: cfg.Logger}
	if slices.Contains(cfg.Modes, coordinator.ModeProcesses) {
		stop, err := env.attach(ctx)
		if err != nil {
			return err
		}
		defer stop()
	}
	docs, err := cfg.Input.pregenerate()
	if err != nil {
		return err
	}
	env.docs = docs
	var runs []modeRun
	for _, m := range cfg.Modes {
		if m != coordinator.ModeProcesses {
			runs = append(runs, modeRun{mode: m})
			continue
		}
		for _, d := range cfg.Dispatch {
			if d != coordinator.DispatchRequest {
				runs = append(runs, modeRun{mode: m, dispatch: d})
				continue
			}
			for _, p := range cfg.DataPlane {
				runs = append(runs, modeRun{mode: m, dispatch: d, plane: p})
			}
		}
	}
	stats, errs, rounds, firstErr := env.runRounds(ctx, runs) // lab/repeat.go
	r := report.New(machine.Probe(), cfg.Report, stats, errs)
	r.Repeats, r.Wide = report.NewRepeats(rounds), cfg.Wide
	if wl, err := workload.New(cfg.Job.Workload, cfg.Job.Params); err == nil {
		if f, ok := wl.(workload.Flopper); ok {
			r.SetGFLOPs(f)
		}
		if e, ok := wl.(workload.Emulator); ok {
			r.Emulated = e.Emulated()
		}
	}
	if st := processesStats(stats); env.floor != nil && st != nil && st.Batches > 0 && ctx.Err() == nil {
		if r.Floor, err = env.floor(ctx, st); err != nil {
			cfg.Logger.Warn("transport floor not measured", "err", err)
		}
	}
	r.CPUBreakdown = env.breakdown
	if err := report.Write(cfg.Stdout, r, cfg.Format); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if firstErr == nil && !r.IdenticalResults {
		firstErr = errors.New("modes produced different results (see digests with --format json)")
	}
	return firstErr
}

// eachMode runs fn for each run in order and returns every run's result
// and error, and the first error named by its run. It stops early on an
// interrupt and on errors every later run would hit too.
func eachMode[R fmt.Stringer, S any](ctx context.Context, runs []R, fn func(i int, run R) (S, error)) (stats []S, errs []error, first error) {
	for i, run := range runs {
		st, err := fn(i, run)
		stats, errs = append(stats, st), append(errs, err)
		if err != nil && first == nil {
			first = fmt.Errorf("%s: %w", run, err)
		}
		if ctx.Err() != nil || errors.Is(err, coordinator.ErrNoDocuments) || errors.Is(err, coordinator.ErrInvalidConfig) {
			break
		}
	}
	return stats, errs, first
}

// runEnv is what running the modes needs beyond Config.
type runEnv struct {
	cfg  Config
	log  *slog.Logger
	nc   *nats.Conn
	docs []string // the generated corpus, made before the modes; nil = stream the input
	// workerPIDs lists the local worker processes, whose CPU time counts in
	// processes mode; nil when workers are elsewhere (no CPU figure then).
	workerPIDs func() []int
	// resumable: the broker keeps its streams after this process exits
	// (not an embedded one), so a jetstream job can be resumed.
	resumable bool
	// floor, when set, measures the transport floor after a processes run.
	floor func(ctx context.Context, st *coordinator.Stats) ([]report.FloorPoint, error)
	// shm is the local fleet's shared-memory endpoints; nil without one.
	shm *shm.Registry
	// coordEnv is how the i-th coordinator process of a sharded processes
	// run connects to the broker (ChildEnv).
	coordEnv func(i int) []string
	// profiles records the local workers' CPU by part; nil = no breakdown.
	profiles profiler
	broker   bool // the broker runs in this process
	// hopCPU is the CPU of one batch's hop through the local broker, for
	// --batch auto (onceHopCPU); nil where the broker is not ours to read.
	hopCPU func(context.Context) time.Duration
	// breakdown is the processes run's CPU by process and part, if recorded.
	breakdown *report.CPUBreakdown
}

// attach connects processes mode to its workers: a local fleet, or the
// broker of cfg.NATS. stop releases what it started.
func (e *runEnv) attach(ctx context.Context) (stop func(), err error) {
	cfg := e.cfg
	if cfg.NATSURL != "" {
		return e.attachRemote(ctx)
	}
	fc := cfg.Fleet
	fc.Workers, fc.Echo, fc.Workload = cfg.Job.Workers, true, cfg.Job.Workload
	fc.JetStream = slices.Contains(cfg.Dispatch, coordinator.DispatchJetStream)
	fc.Shm = slices.Contains(cfg.DataPlane, coordinator.PlaneShm)
	if fc.Shm && fc.ShmPairs == 0 {
		fc.ShmPairs = cfg.Job.WithDefaults().InFlight
	}
	if fc.Logger == nil {
		fc.Logger = e.log
	}
	f, err := fleet.Start(ctx, fc)
	if err != nil {
		return nil, err
	}
	e.nc, e.workerPIDs, e.coordEnv = f.Conn(), f.WorkerPIDs, f.CoordinatorEnv
	e.shm = f.Shm()
	e.profiles, e.broker = f, fc.BrokerProcs == 0
	echo := f.Echo()
	if e.broker { // the clock reads the broker only when it runs in this process
		e.hopCPU = onceHopCPU(e.log, e.nc, echo.Subject, cfg.Job.WithDefaults().InFlight, fleet.CPUClock{PIDs: echo.PIDs}.Now)
	}
	e.floor = func(ctx context.Context, st *coordinator.Stats) ([]report.FloorPoint, error) {
		// The broker runs in this process: its CPU and the echo's are
		// what a raw NATS batch costs.
		return measureFloor(ctx, e.nc, cfg.Job, echo.Subject, st, fleet.CPUClock{PIDs: echo.PIDs}.Now)
	}
	return f.Close, nil
}

// attachRemote connects to the broker of cfg.NATSURL, serves metrics, and
// starts the floor's echo with the coordinator's own credentials.
func (e *runEnv) attachRemote(ctx context.Context) (stop func(), err error) {
	cfg := e.cfg
	nc, err := natsconn.Connect(cfg.NATSURL, "ferry-coordinator", cfg.Auth, e.log)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", coordinator.ErrInvalidConfig, err)
	}
	e.log.Info("nats connected", "url", nc.ConnectedUrlRedacted(), "server", nc.ConnectedServerName())
	e.nc, e.resumable = nc, true // the broker is external: its streams outlive this process
	e.coordEnv = func(int) []string { return fleet.ChildEnv(cfg.NATSURL, cfg.Auth) }
	stops := []func(){nc.Close}
	stop = func() {
		slices.Reverse(stops)
		for _, s := range stops {
			s()
		}
	}
	if cfg.MetricsAddr != "" {
		m := metrics.NewCoordinator()
		e.cfg.Job.Observe = m.Observe
		srv, err := metrics.Serve(cfg.MetricsAddr, m.Registry, nil, e.log)
		if err != nil {
			stop()
			return nil, fmt.Errorf("%w: metrics_addr=%s: %v", coordinator.ErrInvalidConfig, cfg.MetricsAddr, err)
		}
		stops = append(stops, func() { srv.Close() })
		e.log.Info("metrics", "addr", srv.Addr().String())
	}
	// The echo logs in as this coordinator and answers under its login's
	// echo subject, which the broker's coordinator role may serve and send
	// to (broker.RoleCoordinator), so the floor needs no login of its own.
	login, err := natsconn.Login(cfg.NATSURL, cfg.Auth)
	if err != nil {
		e.log.Warn("no transport floor", "err", err)
		return stop, nil
	}
	echo, err := fleet.StartEchoUnder(ctx, proto.CoordinatorEchoSubject(login), fleet.ChildEnv(cfg.NATSURL, cfg.Auth), e.log)
	if err != nil {
		e.log.Warn("no transport floor", "err", err)
		return stop, nil
	}
	stops = append(stops, echo.Stop)
	e.floor = func(ctx context.Context, st *coordinator.Stats) ([]report.FloorPoint, error) {
		return measureFloor(ctx, e.nc, cfg.Job, echo.Subject, st, nil) // the broker's CPU is not ours to read
	}
	return stop, nil
}

// processesStats is the processes run's stats (request dispatch), if any.
func processesStats(stats []*coordinator.Stats) *coordinator.Stats {
	for _, s := range stats {
		if s != nil && s.Mode == coordinator.ModeProcesses {
			return s
		}
	}
	return nil
}

// modeRun is one row of the report: a mode, and for processes how it
// dispatches and on which data plane.
type modeRun struct {
	mode     string
	dispatch string // processes only; "" = request
	plane    string // processes with request dispatch; "" = nats
}

func (r modeRun) String() string {
	if r.plane == coordinator.PlaneShm {
		return r.mode + "/" + r.plane
	}
	if r.dispatch == "" || r.dispatch == coordinator.DispatchRequest {
		return r.mode
	}
	return r.mode + "/" + r.dispatch
}

// runMode runs the job on one mode. Only the last mode writes Out, so the
// file holds one copy of the results.
func (e *runEnv) runMode(ctx context.Context, run modeRun, writeOut bool) (*coordinator.Stats, error) {
	mode := run.String()
	if run.mode == coordinator.ModeProcesses && run.dispatch == coordinator.DispatchRequest && run.plane != coordinator.PlaneShm && e.cfg.Coordinators > 1 {
		return e.runShards(ctx, writeOut)
	}
	backend, err := e.backend(run)
	if err != nil {
		return nil, err
	}
	var src corpus.Source = corpus.Slice(e.docs)
	if e.docs == nil {
		s, err := e.cfg.Input.open()
		if err != nil {
			return nil, err
		}
		defer s.Close()
		src = s
	}
	var out sink.Writer = sink.Discard{}
	var file *sink.File
	if writeOut && e.cfg.Out != "" {
		if file, err = sink.Create(e.cfg.Out); err != nil {
			return nil, err
		}
		out = file
	}
	cfg := e.cfg.Job
	if cfg.AutoBatch && run.String() == coordinator.ModeProcesses && e.hopCPU != nil {
		cfg.BatchCPU = e.hopCPU(ctx) // measured before the run's clock starts
	}
	if e.cfg.Progress != nil {
		set, done := e.cfg.Progress(mode, e.cfg.Input.total())
		cfg.OnProgress = set
		defer done()
	}
	e.log.Debug("mode start", "mode", mode)
	clock := fleet.CPUClock{Descendants: true} // exec workloads compute in programs of their own
	if run.mode == coordinator.ModeProcesses {
		clock.PIDs = e.workerPIDs
	}
	cpu0, cpuOK := clock.Now()
	bd := e.startBreakdown(run)
	st, err := coordinator.Run(ctx, cfg, src, backend, out)
	if cpu1, ok := clock.Now(); st != nil && cpuOK && ok && (run.mode != coordinator.ModeProcesses || e.workerPIDs != nil) {
		st.CPU = cpu1 - cpu0
	}
	bd.stop(ctx, e, st) // after the clock: reading the profiles is not the run's CPU
	if js, ok := backend.(coordinator.Resumable); ok && e.resumable && err != nil && !errors.Is(err, coordinator.ErrDocsFailed) {
		err = fmt.Errorf("%w (job %s: run again with --job-id %s to resume)", err, js.JobID(), js.JobID())
	}
	if err = finishOut(file, err); err == nil {
		err = out.Close()
	}
	if st != nil {
		e.log.Info("mode done", "mode", mode, "docs", st.Docs, "wall", st.Wall.Round(time.Millisecond), "docs_per_s", int(st.DocsPerSec()))
	}
	return st, err
}

func (e *runEnv) backend(run modeRun) (coordinator.Backend, error) {
	job := e.cfg.Job
	var codec proto.Codec
	if run.mode == coordinator.ModeCodec && job.Compress != "" {
		var err error
		if codec, err = wireCodec(job, fleet.MaxPayloadLimit); err != nil { // the largest max_payload ferry's broker takes
			return nil, err
		}
	}
	var reg *shm.Registry
	if run.plane == coordinator.PlaneShm {
		if reg = e.shm; reg == nil { // remote workers: every one falls back to NATS, and the report says so
			reg = shm.NewRegistry()
		}
	}
	b, err := coordinator.NewBackend(coordinator.BackendConfig{
		Mode: run.mode, Dispatch: run.dispatch, Job: job, Conn: e.nc, Expect: e.cfg.ExpectWorkers,
		Codec: codec, JobID: e.cfg.JobID, Shm: reg, Log: e.log,
	})
	if js, ok := b.(coordinator.Resumable); ok && e.resumable {
		e.log.Info("jetstream job", "job_id", js.JobID(), "resume", "run again with --job-id "+js.JobID())
	}
	return b, err
}

// wireCodec is the job's codec and compression as one codec; maxBytes
// bounds what a compressed message may decompress to.
func wireCodec(job coordinator.Config, maxBytes int) (proto.Codec, error) {
	c, err := proto.NewCodec(job.Codec, job.Limits)
	if err != nil {
		return nil, err
	}
	return proto.NewCompressed(c, job.Compress, maxBytes)
}

// measureFloor measures the transport floor after a processes run, at 64 B
// and at the run's mean message size (batch and result bytes averaged), 500
// round trips each way: about half a second for embed batches. With a
// clock that reads the broker's CPU as well as the echo's (an embedded
// broker), it also measures the CPU a raw echo of the mean size costs, with
// as many in flight as each worker has batches.
func measureFloor(ctx context.Context, nc *nats.Conn, job coordinator.Config, echoSubject string, st *coordinator.Stats, clock floor.CPUClock) ([]report.FloorPoint, error) {
	job = job.WithDefaults()
	codec, err := wireCodec(job, int(nc.MaxPayload()))
	if err != nil {
		return nil, err
	}
	sizes := []int{64}
	typical := int((st.BytesOut + st.BytesIn) / (2 * st.Batches))
	if typical = min(typical, int(nc.MaxPayload())-4096); typical > 64 {
		sizes = append(sizes, typical)
	}
	points, err := floor.MeasureWorker(ctx, nc, codec, floor.Config{Sizes: sizes, RoundTrips: 500, EchoSubject: echoSubject})
	if err != nil {
		return nil, err
	}
	fp := report.FloorPoints(points)
	if clock != nil && len(sizes) > 1 {
		const roundTrips = 2000 // enough CPU for /proc's 10 ms ticks to be a few percent
		cost, err := floor.MeasureCPU(ctx, nc, echoSubject, typical, job.InFlight, roundTrips, 10*time.Second, clock)
		if err != nil {
			return fp, err
		}
		fp[len(fp)-1].SetCPU(cost)
	}
	return fp, nil
}

// onceHopCPU returns a function that measures, on its first call, the CPU
// one raw NATS echo of 64 bytes costs every process clock reads (this one
// with its embedded broker, and the echo): the fixed CPU of one batch's
// hop, which --batch auto holds under its overhead target
// (coordinator.Config.BatchCPU); 2,000 round trips, inFlight at a time,
// about 0.2 s. 0 when it cannot be measured (auto then uses stage times).
func onceHopCPU(log *slog.Logger, nc *nats.Conn, subject string, inFlight int, clock floor.CPUClock) func(context.Context) time.Duration {
	var once sync.Once
	var hop time.Duration
	return func(ctx context.Context) time.Duration {
		once.Do(func() {
			err := floor.WaitForEcho(ctx, nc, subject, 10*time.Second) // a fleet's echo may still be starting
			var cost floor.CPUCost
			if err == nil {
				cost, err = floor.MeasureCPU(ctx, nc, subject, 64, inFlight, 2000, 10*time.Second, clock)
			}
			if err != nil {
				log.Info("batch auto sizes on stage times: no hop CPU", "err", err)
				return
			}
			hop = cost.PerRoundTrip
			log.Info("batch auto: the hop's CPU per batch", "cpu", hop)
		})
		return hop
	}
}

// outFile is an output that appears at its path only on Commit.
type outFile interface {
	Commit() error
	Close() error
	Partial() string
}

// finishOut commits the output of a run that ended well (or with only
// some documents failed, each reported by index), or keeps what was
// written as the partial file, named in the error.
func finishOut(f outFile, runErr error) error {
	if f == nil || reflect.ValueOf(f).IsNil() {
		return runErr
	}
	if runErr == nil || errors.Is(runErr, coordinator.ErrDocsFailed) {
		if err := f.Commit(); err != nil {
			return errors.Join(runErr, fmt.Errorf("close output: %w", err))
		}
		return runErr
	}
	if err := f.Close(); err != nil {
		return errors.Join(runErr, fmt.Errorf("close output: %w", err))
	}
	return fmt.Errorf("%w (output not written; what was done is in %s)", runErr, f.Partial())
}

// checkOut refuses an output that is the input itself (the same path, a
// symlink to it or a hard link): the run would truncate what it reads.
func checkOut(out string, in Input) error {
	if out == "" || in.Path == "" {
		return nil
	}
	oi, err := os.Stat(out)
	if err != nil {
		return nil // no such file yet: it cannot be the input
	}
	ii, err := os.Stat(in.Path)
	if err == nil && os.SameFile(oi, ii) {
		return fmt.Errorf("%w: out=%s: is the input (%s); write the results elsewhere", coordinator.ErrInvalidConfig, out, in.Path)
	}
	return nil
}
