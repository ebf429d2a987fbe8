package main

import (
	"context"

	"github.com/ferrylab/ferry/coordinator"
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
	dispatch, err := o.dispatches()
	if err != nil {
		return err
	}
	nc, err := connect(o.NATSURL, "ferry-coordinator", o, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	env := jobEnv{opts: o, cfg: cfg, nc: nc, expect: expect, log: log, stdout: cmd.OutOrStdout(), dispatch: dispatch, resumable: true}
	_ = coordinator.ModeProcesses
	return runModes(ctx, env, modes)
}
