package main

import (
	"context"
	"log/slog"
	"slices"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/metrics"
	"github.com/ferrylab/ferry/report"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
)

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
	if slices.Contains(modes, coordinator.ModeProcesses) {
		floor, stop := coordinatorFloor(ctx, nc, o, log)
		defer stop()
		env.floor = floor
	}
	return runModes(ctx, env, modes)
}

// coordinatorFloor starts the floor's echo on this machine, so the floor is
// this machine's path through the broker and back, and returns what
// measures it and what stops the echo. The echo must subscribe, which a
// broker's coordinator role does not allow: with credentials there is no
// floor (floor is nil), and a note says why.
func coordinatorFloor(ctx context.Context, nc *nats.Conn, o *Options, log *slog.Logger) (floor func(context.Context, *coordinator.Stats) ([]report.FloorPoint, error), stop func()) {
	if a := o.auth(); a.User != "" || a.Token != "" || a.NKeySeed != "" || a.CredsFile != "" {
		log.Info("no transport floor: its echo needs an anonymous connection to the broker")
		return nil, func() {}
	}
	echo, subject, err := startEcho(ctx, childEnv(o.NATSURL, o.auth()), log)
	if err != nil {
		log.Warn("no transport floor", "err", err)
		return nil, func() {}
	}
	return func(ctx context.Context, st *coordinator.Stats) ([]report.FloorPoint, error) {
		return runFloor(ctx, nc, o, subject, st, nil) // the broker's CPU is not ours to read
	}, echo.Stop
}
