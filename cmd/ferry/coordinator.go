package main

import (
	"context"
	"slices"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/report"
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
	fs.Int("expect-workers", 0, "workers to wait for before starting (0 = --workers, or usable cores)")
	addJobFlags(fs)
	return cmd
}

func runCoordinator(ctx context.Context, o *Options, cmd *cobra.Command) error {
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
	if o.ExpectWorkers < 0 {
		return invalid("expect_workers", o.ExpectWorkers, "must be positive")
	}
	expect := o.ExpectWorkers
	if expect == 0 {
		expect = cfg.Workers
	}
	nc, err := connect(o.NATSURL, "ferry-coordinator", o, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	env := jobEnv{opts: o, cfg: cfg, nc: nc, expect: expect, log: log, stdout: cmd.OutOrStdout()}
	if slices.Contains(modes, coordinator.ModeProcesses) {
		// The floor's echo runs here, so it is the floor from this machine
		// through the broker and back.
		echo, echoSubject, err := startEcho(ctx, o.NATSURL, o, log)
		if err != nil {
			return err
		}
		defer echo.Stop()
		env.floor = func(ctx context.Context, st *coordinator.Stats) ([]report.FloorPoint, error) {
			return runFloor(ctx, nc, o, echoSubject, st)
		}
	}
	return runModes(ctx, env, modes)
}
