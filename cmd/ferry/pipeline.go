package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/ferrylab/ferry/internal/spawn"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/lab/llm"
	"github.com/ferrylab/ferry/lab/pipeline"
	"github.com/ferrylab/ferry/report"
	"github.com/ferrylab/ferry/sink"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
)

func newCmdPipeline() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pipeline",
		Short: "The hybrid workload: chunk (CPU) -> one LLM call per chunk (I/O) -> merge (CPU), streamed",
		Long: `pipeline chunks each document (CPU, on the chunk stage's mode: serial,
goroutines, gil, codec, or worker processes over an embedded NATS), sends
each chunk to an LLM for a summary (I/O, up to --concurrency calls in flight
on goroutines in this process), and merges each document's summaries in
order, embedding the result (CPU). The stages stream into each other, so
all three run at once in bounded memory.

It runs once per mode in --modes and reports each run's wall time, calls,
each stage's activity and how much the CPU and I/O stages overlapped, and
whether every mode produced identical results. Without --llm-url the LLM is
a mock started in this process (see ferry mockllm for its flags).`,
		Example: `  ferry pipeline --docs 2000 --doc-words 600
  ferry pipeline --modes serial,goroutines,processes --latency-p50 200ms --format json
  ferry pipeline --input ./notes --llm-url http://127.0.0.1:8080 --out summaries.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := loadOptions(cmd)
			if err != nil {
				return err
			}
			return runPipeline(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.String("modes", "goroutines,processes", "chunk-stage modes to run, in order: "+fmt.Sprint(coordinator.Modes()))
	addJobFlags(fs)
	fs.Int("max-payload", broker.DefaultMaxPayload, "embedded broker's max message size in bytes")
	addLLMClientFlags(fs)
	addMockFlags(fs)
	// The chunk stage always runs chunk; these job keys do not apply.
	for _, name := range []string{"workload", "spin-cost", "out-bytes", "model-seed", "dispatch", "job-id"} {
		_ = fs.MarkHidden(name)
	}
	return cmd
}

func runPipeline(ctx context.Context, o *Options, stdout io.Writer) (err error) {
	log, err := o.logger()
	if err != nil {
		return err
	}
	modes, err := o.modes()
	if err != nil {
		return err
	}
	cfg, err := o.job()
	if err != nil {
		return err
	}
	if o.Out != "" && !strings.HasSuffix(o.Out, ".jsonl") {
		return invalid("out", o.Out, "pipeline writes .jsonl (one merged summary per document)")
	}
	client, ep, err := newLLMClient(ctx, o, log)
	if err != nil {
		return err
	}
	defer func() {
		if serr := ep.close(); serr != nil && err == nil {
			err = serr
		}
	}()
	env := jobEnv{opts: o, cfg: cfg, log: log, stdout: stdout, expect: cfg.Workers}
	if slices.Contains(modes, coordinator.ModeProcesses) {
		nc, stop, err := startLocalWorkers(ctx, o, cfg.Workers, log)
		if err != nil {
			return err
		}
		defer stop()
		env.nc = nc
	}

	var (
		stats    []*pipeline.Stats
		errs     []error
		firstErr error
	)
	for i, mode := range modes {
		client.CloseIdleConnections() // each mode dials its own connections
		st, err := runPipelineMode(ctx, env, mode, client, i == len(modes)-1)
		stats, errs = append(stats, st), append(errs, err)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("%s: %w", mode, err)
		}
		if ctx.Err() != nil || errors.Is(err, coordinator.ErrNoDocuments) || errors.Is(err, coordinator.ErrInvalidConfig) {
			break
		}
	}
	cfgMap := o.configMap()
	cfgMap["modes"] = strings.Join(modes, ",")
	if u, ok := cfgMap["llm_url"].(string); ok {
		cfgMap["llm_url"] = redactURL(u)
	}
	r := report.NewPipeline(cfgMap, ep.shown(), ep.mock, o.Concurrency, stats, errs)
	if err := report.WritePipeline(stdout, r, o.Format); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if firstErr == nil && !r.IdenticalResults {
		firstErr = errors.New("modes produced different results (see digests with --format json)")
	}
	return firstErr
}

// runPipelineMode runs the pipeline with the chunk stage on mode; only the
// last mode writes --out.
func runPipelineMode(ctx context.Context, env jobEnv, mode string, client *llm.Client, writeOut bool) (*pipeline.Stats, error) {
	backend, err := newBackend(env, modeRun{mode: mode})
	if err != nil {
		return nil, err
	}
	src, err := openSource(env.opts)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	cfg := pipeline.Config{Chunk: env.cfg, Concurrency: env.opts.Concurrency, MergeDim: env.opts.Dim}
	var out *sink.JSONLines
	if writeOut && env.opts.Out != "" {
		if out, err = sink.CreateJSONLines(env.opts.Out); err != nil {
			return nil, err
		}
		cfg.OnDoc = func(d pipeline.Doc) error { return out.Encode(d.Record()) }
	}
	env.log.Debug("pipeline start", "mode", mode)
	st, err := pipeline.Run(ctx, cfg, src, backend, client)
	if out != nil {
		if cerr := out.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close output: %w", cerr)
		}
	}
	if st != nil {
		env.log.Info("pipeline done", "mode", mode, "docs", st.Docs, "chunks", st.Chunks,
			"wall", st.Wall.Round(1e6), "overlap", strconv.FormatFloat(st.Overlap(), 'f', 2, 64))
	}
	return st, err
}

// startLocalWorkers starts an embedded broker (with per-run credentials)
// and one worker process per worker, as ferry run does, and connects to
// it. stop shuts down in order: connection, workers (they drain), broker.
func startLocalWorkers(ctx context.Context, o *Options, workers int, log *slog.Logger) (*nats.Conn, func(), error) {
	if o.MaxPayload <= 0 || o.MaxPayload > 64<<20 {
		return nil, nil, invalid("max_payload", o.MaxPayload, "must be between 1 and 64 MiB")
	}
	creds := newRunCredentials()
	b, err := broker.Start(context.WithoutCancel(ctx), broker.Options{MaxPayload: int32(o.MaxPayload), Users: creds.users()})
	if err != nil {
		return nil, nil, err
	}
	pool, err := spawn.Start(ctx, spawn.Config{
		Args:    []string{"worker", "--log-level", "warn", "--parent-pid", strconv.Itoa(osGetpid())},
		Env:     childEnv(b.URL(), creds.worker), // not argv: ps shows argv to everyone
		Procs:   workers,
		Logger:  log,
		Restart: true,
	})
	if err != nil {
		b.Shutdown()
		return nil, nil, err
	}
	nc, err := connect(b.URL(), "ferry-pipeline", creds.coordinator, log, b.InProcess())
	if err != nil {
		pool.Stop()
		b.Shutdown()
		return nil, nil, err
	}
	return nc, func() { nc.Close(); pool.Stop(); b.Shutdown() }, nil
}
