package main

import (
	"context"

	"github.com/ferrylab/ferry/internal/metrics"
	"github.com/spf13/cobra"
)

func newCmdCoordinator() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run a job on workers already attached to an external NATS",
		Long: `coordinator connects to NATS, waits until --expect-workers ferry workers
answer discovery, runs the job in processes mode (plus any other --modes),
prints the report and exits.`,
		Example: `  ferry coordinator --nats-url nats://127.0.0.1:4222 --expect-workers 2
  ferry coordinator --nats-url nats://broker:4222 --expect-workers 4 --input docs.jsonl --out vecs.npy --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := loadOptions(cmd)
			if err != nil {
				return err
			}
			return runCoordinator(cmd.Context(), o, cmd)
		},
	}
	fs := cmd.Flags()
	addNATSFlags(fs, "nats://127.0.0.1:4222")
	fs.String("modes", "processes", "modes to run, in order")
	addMetricsFlag(fs)
	fs.Int("expect-workers", 0, "workers to wait for before starting (0 = --workers, or usable cores)")
	addJobFlags(fs)
	return cmd
}

func runCoordinator(ctx context.Context, o *Options, cmd *cobra.Command) error {
	env, modes, err := newJobEnv(o, cmd)
	if err != nil {
		return err
	}
	cfg, log := env.cfg, env.log
	if o.ExpectWorkers < 0 {
		return invalid("expect_workers", o.ExpectWorkers, "must be positive")
	}
	expect := o.ExpectWorkers
	if expect == 0 {
		expect = cfg.Workers
	}
	nc, err := connect(o.NATSURL, "ferry-coordinator", o.auth(), log)
	if err != nil {
		return err
	}
	defer nc.Close()
	log.Info("nats connected", "url", nc.ConnectedUrlRedacted(), "server", nc.ConnectedServerName())
	if o.MetricsAddr != "" {
		m := metrics.NewCoordinator()
		env.cfg.Observe = m.Observe
		srv, err := metrics.Serve(o.MetricsAddr, m.Registry, nil, log)
		if err != nil {
			return invalid("metrics_addr", o.MetricsAddr, err.Error())
		}
		defer srv.Close()
		log.Info("metrics", "addr", srv.Addr().String())
	}
	env.nc, env.expect = nc, expect
	env.resumable = true // the broker is external: its streams outlive this process
	return runModes(ctx, env, modes)
}
