package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/internal/machine"
	"github.com/ferrylab/ferry/lab/llm"
	"github.com/ferrylab/ferry/lab/pipeline"
	"github.com/ferrylab/ferry/report"
	"github.com/ferrylab/ferry/sink"
)

// PipelineConfig configures RunPipeline: the hybrid pipeline, once per
// chunk-stage mode.
type PipelineConfig struct {
	Job      coordinator.Config // the chunk stage's job (workload chunk)
	Modes    []string           // chunk-stage modes, in order
	Input    Input
	Out      string // write the last mode's merged summaries as JSON lines; "" = none
	MergeDim int    // width of the merged embedding; 0 = the workload default
	Endpoint LLMEndpoint
	Fleet    fleet.Config   // the local fleet processes mode runs on
	Report   map[string]any // the configuration echoed in the report
	Format   string         // "" = text
	Stdout   io.Writer      // nil = discard
	Logger   *slog.Logger   // nil = discard
}

// pipelineRun names one chunk-stage mode's run.
type pipelineRun string

func (p pipelineRun) String() string { return string(p) }

// RunPipeline runs the pipeline once per mode, writes the report and
// returns the first error (after the report).
func RunPipeline(ctx context.Context, cfg PipelineConfig) (err error) {
	log := orDiscard(cfg.Logger)
	if err := (Config{Job: cfg.Job, Modes: cfg.Modes, Input: cfg.Input, Out: cfg.Out, Format: cfg.Format}).Validate(); err != nil {
		return err
	}
	client, ep, err := cfg.Endpoint.start(ctx, log)
	if err != nil {
		return err
	}
	defer ep.closeInto(&err)
	env := &runEnv{cfg: Config{Job: cfg.Job, Input: cfg.Input, ExpectWorkers: cfg.Job.Workers}, log: log}
	if slices.Contains(cfg.Modes, coordinator.ModeProcesses) {
		fc := cfg.Fleet
		fc.Workers, fc.Logger = cfg.Job.Workers, log
		f, err := fleet.Start(ctx, fc)
		if err != nil {
			return err
		}
		defer f.Close()
		env.nc = f.Conn()
	}
	runs := make([]pipelineRun, len(cfg.Modes))
	for i, m := range cfg.Modes {
		runs[i] = pipelineRun(m)
	}
	stats, errs, firstErr := eachMode(ctx, runs, func(i int, mode pipelineRun) (*pipeline.Stats, error) {
		client.CloseIdleConnections() // each mode dials its own connections
		out := ""
		if i == len(runs)-1 {
			out = cfg.Out
		}
		return runPipelineMode(ctx, env, cfg, string(mode), client, out)
	})
	r := report.NewPipeline(machine.Probe(), cfg.Report, ep.shown(), ep.mock, cfg.Endpoint.Client.Concurrency, stats, errs)
	if err := report.WritePipeline(orStdout(cfg.Stdout), r, cfg.Format); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if firstErr == nil && !r.IdenticalResults {
		firstErr = errors.New("modes produced different results (see digests with --format json)")
	}
	return firstErr
}

// runPipelineMode runs the pipeline with the chunk stage on mode, writing
// merged documents to outPath when it is set.
func runPipelineMode(ctx context.Context, env *runEnv, cfg PipelineConfig, mode string, client *llm.Client, outPath string) (*pipeline.Stats, error) {
	backend, err := env.backend(modeRun{mode: mode})
	if err != nil {
		return nil, err
	}
	src, err := cfg.Input.open()
	if err != nil {
		return nil, err
	}
	defer src.Close()
	pcfg := pipeline.Config{Chunk: cfg.Job, Concurrency: cfg.Endpoint.Client.Concurrency, MergeDim: cfg.MergeDim}
	var out *sink.JSONLines
	if outPath != "" {
		if out, err = sink.CreateJSONLines(outPath); err != nil {
			return nil, err
		}
		pcfg.OnDoc = func(d pipeline.Doc) error { return out.Encode(d.Record()) }
	}
	env.log.Debug("pipeline start", "mode", mode)
	st, err := pipeline.Run(ctx, pcfg, src, backend, client)
	err = finishOut(out, err)
	if st != nil {
		env.log.Info("pipeline done", "mode", mode, "docs", st.Docs, "chunks", st.Chunks,
			"wall", st.Wall.Round(time.Millisecond), "overlap", strconv.FormatFloat(st.Overlap(), 'f', 2, 64))
	}
	return st, err
}
