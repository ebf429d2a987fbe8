package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/internal/spawn"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/metrics"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/worker"
	"github.com/spf13/cobra"
)

type workerOptions struct {
	logOpts     `mapstructure:",squash"`
	natsOpts    `mapstructure:",squash"`
	Procs       int    `mapstructure:"procs"`
	MaxDocBytes int    `mapstructure:"max_doc_bytes"`
	Dispatch    string `mapstructure:"dispatch"`
	MetricsAddr string `mapstructure:"metrics_addr"`
	ParentPID   int    `mapstructure:"parent_pid"`
}

// oneCore gives this process one P unless GOMAXPROCS is set. A worker
// stands for one core and computes one batch at a time; with one P its
// reader, handler and flusher goroutines hand over on the same thread
// instead of waking another, which cut a worker's CPU per empty batch by
// about 40% in BenchmarkDispatch (see docs/wire.md).
func oneCore() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

func newCmdWorker() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Serve batches from NATS as the micro service ferry-worker",
		Long: `worker connects to NATS, registers as the micro service "ferry-worker"
(discoverable with $SRV.PING / nats micro ls) and computes the batches a
coordinator sends it, one at a time. --procs N starts N worker processes.
With --dispatch jetstream it also pulls batches from the FERRY_BATCHES
stream (durable dispatch). SIGTERM finishes the batch in hand, drains and exits.`,
		Example: `  ferry worker --nats-url nats://127.0.0.1:4222
  FERRY_NATS_URL=nats://broker:4222 ferry worker --procs 4 --log-format json
  ferry worker --nats-url nats://broker:4222 --dispatch jetstream`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var o workerOptions
			if err := load(cmd, &o); err != nil {
				return err
			}
			return runWorker(cmd.Context(), &o)
		},
	}
	fs := cmd.Flags()
	addNATSFlags(fs, "nats://127.0.0.1:4222")
	fs.Int("procs", 1, "worker processes to run (each one is a separate OS process)")
	fs.Int("max-doc-bytes", proto.DefaultMaxDocBytes, "reject batches with a document larger than this")
	addDispatchFlag(fs)
	addMetricsFlag(fs)
	fs.Int("parent-pid", 0, "exit when this process is no longer the parent (set by ferry run)")
	_ = fs.MarkHidden("parent-pid")
	return cmd
}

func runWorker(ctx context.Context, o *workerOptions) error {
	log, err := o.logger()
	if err != nil {
		return err
	}
	if o.Procs < 1 {
		return invalid("procs", o.Procs, "must be at least 1")
	}
	dispatch, err := parseList(o.Dispatch, "dispatch", oneOf([]string{coordinator.DispatchRequest, coordinator.DispatchJetStream}))
	if err != nil {
		return err
	}
	if o.Procs > 1 {
		if o.MetricsAddr != "" {
			log.Warn("metrics_addr is ignored with procs > 1 (children cannot share one port): run one worker per process or container to scrape each", "metrics_addr", o.MetricsAddr)
		}
		// Supervise N single workers as child processes.
		pool, err := spawn.Start(ctx, spawn.Config{
			Args:    []string{"worker", "--procs", "1", "--log-level", o.LogLevel, "--log-format", o.LogFormat, "--max-doc-bytes", strconv.Itoa(o.MaxDocBytes), "--dispatch", o.Dispatch, "--metrics-addr=", "--parent-pid", strconv.Itoa(os.Getpid())},
			Env:     fleet.ChildEnv(o.NATSURL, o.auth()), // URL and credentials stay out of argv (ps)
			Procs:   o.Procs,
			Logger:  log,
			Restart: true,
		})
		if err != nil {
			return err
		}
		<-ctx.Done()
		pool.Stop()
		return nil
	}
	oneCore()
	cfg := worker.Config{
		URL: o.NATSURL, Auth: o.auth(), Logger: log, ParentPID: o.ParentPID,
		Limits:      proto.Limits{MaxDocBytes: o.MaxDocBytes},
		BeforeBatch: crashOn(os.Getenv(envCrashOn)),
		JetStream:   slices.Contains(dispatch, coordinator.DispatchJetStream),
	}
	var m *metrics.Worker
	if o.MetricsAddr != "" {
		m = metrics.NewWorker(time.Now())
		cfg.Observe = m.Observe
	}
	w, err := worker.New(cfg)
	if err != nil {
		return err
	}
	if m != nil {
		srv, err := metrics.Serve(o.MetricsAddr, m.Registry, w.Ready, log)
		if err != nil {
			return invalid("metrics_addr", o.MetricsAddr, err.Error())
		}
		defer srv.Close()
		log.Info("metrics", "addr", srv.Addr().String())
	}
	err = w.Run(ctx)
	if errors.Is(err, worker.ErrParentGone) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// envCrashOn names a TEST-ONLY hook: a worker whose batch holds a document
// with exactly this text exits at once with code 3, as a segfaulting model
// would. The fault tests (faulttest/) use it to prove that a document that
// kills its worker is isolated by bisection. It is deliberately not a config
// key; never set it in production.
const envCrashOn = "FERRY_TEST_CRASH_ON"

func crashOn(text string) func(*proto.Batch) {
	if text == "" {
		return nil
	}
	return func(b *proto.Batch) {
		if slices.Contains(b.Docs, text) {
			fmt.Fprintf(os.Stderr, "ferry worker: %s matched batch %d; exiting with code 3 (test hook)\n", envCrashOn, b.ID)
			os.Exit(3)
		}
	}
}
