package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/report"
	"github.com/ferrylab/ferry/sink"
	"github.com/ferrylab/ferry/workload"
	"github.com/nats-io/nats.go"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// jobEnv is what running the modes of a job needs beyond Options.
type jobEnv struct {
	opts   *Options
	cfg    coordinator.Config
	nc     *nats.Conn // nil unless processes mode runs
	expect int        // workers to wait for in processes mode
	// dispatch lists how processes mode sends batches; it runs once per
	// entry (request, jetstream), so one report compares them.
	dispatch []string
	// resumable: the broker keeps its streams after this process exits
	// (not ferry run's embedded one), so a jetstream job can be resumed.
	resumable bool
	log       *slog.Logger
	stdout    io.Writer
	docs      []string // the generated corpus, made before the modes; nil = stream the input
	// workerPIDs lists the local worker processes, whose CPU time counts in
	// processes mode; nil when workers are elsewhere (no CPU figure then).
	workerPIDs func() []int
	// floor, when set, measures the transport floor after a processes run.
	floor func(ctx context.Context, st *coordinator.Stats) ([]report.FloorPoint, error)
}

// newJobEnv validates what every job command shares: logging, modes and
// the job keys.
func newJobEnv(o *Options, cmd *cobra.Command) (jobEnv, []string, error) {
	log, err := o.logger()
	if err != nil {
		return jobEnv{}, nil, err
	}
	modes, err := o.modes()
	if err != nil {
		return jobEnv{}, nil, err
	}
	cfg, err := o.job()
	if err != nil {
		return jobEnv{}, nil, err
	}
	dispatch, err := o.dispatches()
	if err != nil {
		return jobEnv{}, nil, err
	}
	return jobEnv{opts: o, cfg: cfg, log: log, stdout: cmd.OutOrStdout(), dispatch: dispatch}, modes, nil
}

// runModes runs the job once per mode, in order, writes the report and
// returns the first error (after the report, so partial results are shown).
func runModes(ctx context.Context, env jobEnv, modes []string) error {
	var runs []modeRun
	for _, m := range modes {
		if m != coordinator.ModeProcesses {
			runs = append(runs, modeRun{mode: m})
			continue
		}
		for _, d := range env.dispatch {
			runs = append(runs, modeRun{mode: m, dispatch: d})
		}
	}
	var stats []*coordinator.Stats
	var errs []error
	var firstErr, err error
	if env.docs, err = pregenerate(env.opts); err != nil {
		return err
	}
	for i, run := range runs {
		st, err := runMode(ctx, env, run, i == len(runs)-1)
		if st == nil {
			st = &coordinator.Stats{Mode: run.String()} // the report still names the mode that failed
		}
		stats, errs = append(stats, st), append(errs, err)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("%s: %w", run, err)
		}
		if ctx.Err() != nil || errors.Is(err, coordinator.ErrNoDocuments) || errors.Is(err, coordinator.ErrInvalidConfig) {
			break
		}
	}
	r := report.New(env.opts.configMap(), stats, errs)
	if wl, err := workload.New(env.cfg.Workload, env.cfg.Params); err == nil {
		if f, ok := wl.(workload.Flopper); ok {
			r.SetGFLOPs(f)
		}
	}
	if st := processesStats(stats); env.floor != nil && st != nil && st.Batches > 0 && ctx.Err() == nil {
		if r.Floor, err = env.floor(ctx, st); err != nil {
			env.log.Warn("transport floor not measured", "err", err)
		}
	}
	if err := report.Write(env.stdout, r, env.opts.Format); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if firstErr == nil && !r.IdenticalResults {
		firstErr = errors.New("modes produced different results (see digests with --format json)")
	}
	return firstErr
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

// modeRun is one row of the report: a mode, and for processes how it dispatches.
type modeRun struct {
	mode     string
	dispatch string // processes only; "" = request
}

func (r modeRun) String() string {
	if r.dispatch == "" || r.dispatch == coordinator.DispatchRequest {
		return r.mode
	}
	return r.mode + "/" + r.dispatch
}

// runMode runs the job on one mode. Only the last mode writes --out, so
// the file holds one copy of the results.
func runMode(ctx context.Context, env jobEnv, run modeRun, writeOut bool) (*coordinator.Stats, error) {
	mode := run.String()
	backend, err := newBackend(env, run)
	if err != nil {
		return nil, err
	}
	var src corpus.Source = corpus.Slice(env.docs)
	if env.docs == nil {
		s, err := openSource(env.opts)
		if err != nil {
			return nil, err
		}
		defer s.Close()
		src = s
	}
	var out sink.Writer = sink.Discard{}
	if writeOut && env.opts.Out != "" {
		if out, err = sink.Create(env.opts.Out); err != nil {
			return nil, err
		}
	}
	cfg := env.cfg
	bar := newProgress(env.opts, mode)
	if bar != nil {
		cfg.OnProgress = func(n int64) { _ = bar.Set64(n) }
	}
	env.log.Debug("mode start", "mode", mode)
	clock := cpuClock{}
	if run.mode == coordinator.ModeProcesses {
		clock.pids = env.workerPIDs
	}
	cpu0, cpuOK := clock.now()
	st, err := coordinator.Run(ctx, cfg, src, backend, out)
	if cpu1, ok := clock.now(); st != nil && cpuOK && ok && (run.mode != coordinator.ModeProcesses || env.workerPIDs != nil) {
		st.CPU = cpu1 - cpu0
	}
	if js, ok := backend.(coordinator.Resumable); ok && env.resumable && err != nil && !errors.Is(err, coordinator.ErrDocsFailed) {
		err = fmt.Errorf("%w (job %s: run again with --job-id %s to resume)", err, js.JobID(), js.JobID())
	}
	if bar != nil {
		_ = bar.Finish()
		_ = bar.Exit()
	}
	if cerr := out.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close output: %w", cerr)
	}
	if st != nil {
		env.log.Info("mode done", "mode", mode, "docs", st.Docs, "wall", st.Wall.Round(1e6), "docs_per_s", int(st.DocsPerSec()))
	}
	return st, err
}

func newBackend(env jobEnv, run modeRun) (coordinator.Backend, error) {
	var codec proto.Codec
	if run.mode == coordinator.ModeCodec && env.cfg.Compress != "" {
		c, err := env.opts.wireCodec(64 << 20) // the largest max_payload ferry's broker takes
		if err != nil {
			return nil, err
		}
		codec = c
	}
	b, err := coordinator.NewBackend(coordinator.BackendConfig{
		Mode: run.mode, Dispatch: run.dispatch, Job: env.cfg, Conn: env.nc,
		Expect: env.expect, Codec: codec, JobID: env.opts.JobID, Log: env.log,
	})
	if err != nil {
		return nil, err
	}
	if r, ok := b.(coordinator.Resumable); ok && env.resumable {
		env.log.Info("jetstream job", "job_id", r.JobID(), "resume", "run again with --job-id "+r.JobID())
	}
	return b, nil
}

// openSource opens --input, or the generated corpus.
func openSource(o *Options) (corpus.Source, error) {
	if o.Input != "" {
		src, err := corpus.Open(o.Input, corpus.Limits{MaxDocBytes: o.MaxDocBytes, MaxDocs: o.MaxDocs})
		if err != nil {
			return nil, fmt.Errorf("%w: input=%s: %v", coordinator.ErrInvalidConfig, o.Input, err)
		}
		return src, nil
	}
	return corpus.Generated(corpus.GenConfig{Seed: o.Seed, Docs: o.Docs, Words: o.DocWords, DocBytes: o.DocBytes})
}

// newProgress returns a progress bar on stderr when it is a terminal and
// output is not quiet; nil otherwise.
func newProgress(o *Options, mode string) *progressbar.ProgressBar {
	if o.Quiet || !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	total := o.Docs
	if o.Input != "" {
		total = -1 // unknown until read
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(fmt.Sprintf("%-10s", mode)),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("docs"),
		progressbar.OptionThrottle(100e6),
		progressbar.OptionClearOnFinish(),
	)
}
