package main

import (
	"context"
	"fmt"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/ferrylab/ferry/lab"
	"github.com/ferrylab/ferry/metrics"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

type coordinatorOptions struct {
	logOpts       `mapstructure:",squash"`
	natsOpts      `mapstructure:",squash"`
	jobOpts       `mapstructure:",squash"`
	MetricsAddr   string `mapstructure:"metrics_addr"`
	ExpectWorkers int    `mapstructure:"expect_workers"`
}

func newCmdCoordinator() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run a job on workers already attached to an external NATS",
		Long: `coordinator connects to NATS, waits until --expect-workers ferry workers
answer discovery, runs the job in processes mode (plus any other --modes),
prints the report and exits. For the report's transport floor it starts an
echo process on this machine, connected to the same NATS.`,
		Example: `  ferry coordinator --nats-url nats://127.0.0.1:4222 --expect-workers 2
  ferry coordinator --nats-url nats://broker:4222 --expect-workers 4 --input docs.jsonl --out vecs.npy --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var o coordinatorOptions
			if err := load(cmd, &o); err != nil {
				return err
			}
			return runCoordinator(cmd.Context(), cmd, &o)
		},
	}
	fs := cmd.Flags()
	addNATSFlags(fs, "nats://127.0.0.1:4222")
	addMetricsFlag(fs)
	fs.Int("expect-workers", 0, "workers to wait for before starting (0 = --workers, or usable cores)")
	addJobFlags(fs, "processes")
	return cmd
}

func addMetricsFlag(fs *pflag.FlagSet) {
	fs.String("metrics-addr", "", "serve Prometheus /metrics and /healthz on this host:port (\"\" = off)")
}

func runCoordinator(ctx context.Context, cmd *cobra.Command, o *coordinatorOptions) error {
	log, err := o.logger()
	if err != nil {
		return err
	}
	cfg, err := o.lab(cmd, o, log)
	if err != nil {
		return err
	}
	if o.ExpectWorkers < 0 {
		return invalid("expect_workers", o.ExpectWorkers, "must be positive")
	}
	nc, err := natsconn.Connect(o.NATSURL, "ferry-coordinator", o.auth(), log)
	if err != nil {
		return fmt.Errorf("%w: %w", coordinator.ErrInvalidConfig, err)
	}
	defer nc.Close()
	log.Info("nats connected", "url", nc.ConnectedUrlRedacted(), "server", nc.ConnectedServerName())
	if o.MetricsAddr != "" {
		m := metrics.NewCoordinator()
		cfg.Job.Observe = m.Observe
		srv, err := metrics.Serve(o.MetricsAddr, m.Registry, nil, log)
		if err != nil {
			return invalid("metrics_addr", o.MetricsAddr, err.Error())
		}
		defer srv.Close()
		log.Info("metrics", "addr", srv.Addr().String())
	}
	cfg.NATS, cfg.ExpectWorkers = nc, o.ExpectWorkers
	// The floor's echo must subscribe, which a broker's coordinator role
	// does not allow: with credentials there is no floor.
	if a := o.auth(); a.User != "" || a.Token != "" || a.NKeySeed != "" || a.CredsFile != "" {
		log.Info("no transport floor: its echo needs an anonymous connection to the broker")
	} else {
		cfg.EchoEnv = fleet.ChildEnv(o.NATSURL, o.auth())
	}
	return lab.Run(ctx, cfg)
}
