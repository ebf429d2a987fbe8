package command

import (
	"context"
	"os"
	"slices"
	"strconv"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/internal/cli"
	"github.com/ferrylab/ferry/internal/list"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/worker"
	"github.com/spf13/cobra"
)

type workerOptions struct {
	logOpts     `mapstructure:",squash" flags:"root"`
	natsOpts    `mapstructure:",squash"`
	metricsOpts `mapstructure:",squash"`
	Procs       int    `mapstructure:"procs" help:"worker processes to run (each one is a separate OS process)"`
	MaxDocBytes int    `mapstructure:"max_doc_bytes" help:"reject batches with a document larger than this"`
	Dispatch    string `mapstructure:"dispatch" help:"request (request/reply), or request,jetstream to also pull batches from the FERRY_BATCHES stream"`
	ParentPID   int    `mapstructure:"parent_pid" hidden:"true" help:"exit when this process is no longer the parent (set by ferry run)"`
	execOpts    `mapstructure:",squash"`
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
			if err := cli.Load(cmd, &o); err != nil {
				return err
			}
			return runWorker(cmd.Context(), &o)
		},
	}
	cli.AddFlags(cmd.Flags(), workerOptions{natsOpts: defaultNATS, Procs: 1, MaxDocBytes: proto.DefaultMaxDocBytes, Dispatch: coordinator.DispatchRequest, execOpts: defaultExec()})
	return cmd
}

func runWorker(ctx context.Context, o *workerOptions) error {
	log, err := o.logger()
	if err != nil {
		return err
	}
	if o.Procs < 1 {
		return cli.Invalid("procs", o.Procs, "must be at least 1")
	}
	dispatch, err := list.Parse(o.Dispatch, "dispatch", list.OneOf([]string{coordinator.DispatchRequest, coordinator.DispatchJetStream}))
	if err != nil {
		return err
	}
	if o.Procs > 1 {
		if o.MetricsAddr != "" {
			log.Warn("metrics_addr is ignored with procs > 1 (children cannot share one port): run one worker per process or container to scrape each", "metrics_addr", o.MetricsAddr)
		}
		args := []string{"worker", "--procs", "1", "--log-level", o.LogLevel, "--log-format", o.LogFormat, "--max-doc-bytes", strconv.Itoa(o.MaxDocBytes), "--dispatch", o.Dispatch, "--metrics-addr=", "--parent-pid", strconv.Itoa(os.Getpid()),
			"--exec", o.Exec, "--exec-timeout", o.ExecTimeout.String()}
		return fleet.Supervise(ctx, args, fleet.ChildEnv(o.NATSURL, o.auth()), o.Procs, log) // URL and credentials stay out of argv (ps)
	}
	stop, err := o.startExec("", 1) // started now, so no batch waits for it
	if err != nil {
		return err
	}
	defer stop()
	worker.OneCore()
	cfg := worker.Config{
		URL: o.NATSURL, Auth: o.auth(), Logger: log, ParentPID: o.ParentPID,
		Limits:      proto.Limits{MaxDocBytes: o.MaxDocBytes},
		BeforeBatch: worker.CrashHook(),
		JetStream:   slices.Contains(dispatch, coordinator.DispatchJetStream),
	}
	return fleet.ServeWorker(ctx, cfg, o.MetricsAddr)
}
