package command

import (
	"context"

	"github.com/ferrylab/ferry/internal/cli"
	"github.com/ferrylab/ferry/lab"
	"github.com/spf13/cobra"
)

type coordinatorOptions struct {
	logOpts       `mapstructure:",squash" flags:"root"`
	natsOpts      `mapstructure:",squash"`
	jobOpts       `mapstructure:",squash"`
	metricsOpts   `mapstructure:",squash"`
	ExpectWorkers int  `mapstructure:"expect_workers" help:"workers to wait for before starting (0 = --workers, or usable cores)"`
	Wide          bool `mapstructure:"wide" help:"print every column of the table (wall time, MB/s, efficiency, batches, bytes, requeues); JSON and CSV always have them"`
}

// metricsOpts serve Prometheus metrics (worker, coordinator).
type metricsOpts struct {
	MetricsAddr string `mapstructure:"metrics_addr" help:"serve Prometheus /metrics and /healthz on this host:port (\"\" = off)"`
}

func newCmdCoordinator() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run a job on workers already attached to an external NATS",
		Long: `coordinator connects to NATS, waits until --expect-workers ferry workers
answer discovery, runs the job in processes mode (plus any other --modes),
prints the report and exits. For the report's transport floor it starts an
echo process on this machine, connected to the same NATS with the
coordinator's own credentials (a broker's coordinator role may serve its
own echo subject, ferry.echo.<login>; docs/auth.md).`,
		Example: `  ferry coordinator --nats-url nats://127.0.0.1:4222 --expect-workers 2
  ferry coordinator --nats-url nats://broker:4222 --expect-workers 4 --input docs.jsonl --out vecs.npy --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var o coordinatorOptions
			if err := cli.Load(cmd, &o); err != nil {
				return err
			}
			return runCoordinator(cmd.Context(), cmd, &o)
		},
	}
	cli.AddFlags(cmd.Flags(), coordinatorOptions{natsOpts: defaultNATS, jobOpts: defaultJob("processes")})
	return cmd
}

func runCoordinator(ctx context.Context, cmd *cobra.Command, o *coordinatorOptions) error {
	log, err := o.logger()
	if err != nil {
		return err
	}
	cfg, stop, err := o.labWithExec(cmd, o, log)
	if err != nil {
		return err
	}
	defer stop()
	if o.ExpectWorkers < 0 {
		return cli.Invalid("expect_workers", o.ExpectWorkers, "must be positive")
	}
	cfg.NATSURL, cfg.Auth, cfg.ExpectWorkers, cfg.MetricsAddr, cfg.Wide = o.NATSURL, o.auth(), o.ExpectWorkers, o.MetricsAddr, o.Wide
	return lab.Run(ctx, cfg)
}
