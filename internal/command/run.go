package command

import (
	"context"

	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/internal/cli"
	"github.com/ferrylab/ferry/lab"
	"github.com/spf13/cobra"
)

type runOptions struct {
	logOpts   `mapstructure:",squash" flags:"root"`
	jobOpts   `mapstructure:",squash"`
	fleetOpts `mapstructure:",squash"`
	Repeat    int  `mapstructure:"repeat" help:"rounds of the modes, interleaved (A B A B): the table shows each mode's median round, then medians and each mode against goroutines paired by round, with min..max intervals (1 = once, quickest)"`
	Wide      bool `mapstructure:"wide" help:"print every column of the table (wall time, MB/s, efficiency, batches, bytes, requeues); JSON and CSV always have them"`
}

func newCmdRun() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "All-in-one: embedded NATS, local worker processes, the job in every mode, one table",
		Long: `run starts an embedded NATS server on a loopback port, spawns one ferry worker
process per usable core, runs the job in each mode (serial, goroutines,
processes by default), checks that every mode produced identical results and
prints one table comparing them. The modes run --repeat rounds, interleaved
(serial goroutines processes, serial goroutines processes, ...), so drift of
a shared machine hits every mode alike: the table shows each mode's median
round, and under it each mode against goroutines, docs/s and CPU per
document, as the median of ratios taken within a round with their range.
--wide prints every column. With processes mode it also spawns an
echo process and, after the modes, measures the transport floor: a raw NATS
echo round trip next to ferry's own with empty compute, at 64 B and at the
run's mean message size. Worker processes never outlive run.`,
		Example: `  ferry run
  ferry run --repeat 1 --wide
  ferry run --modes serial,goroutines,gil,codec,processes --docs 50000
  ferry run -q --modes goroutines,processes --data-plane nats,shm
  ferry run --workload chunk --input ./notes --out chunks.jsonl
  ferry run --codec msgpack --format json > report.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var o runOptions
			if err := cli.Load(cmd, &o); err != nil {
				return err
			}
			return runRun(cmd.Context(), cmd, &o)
		},
	}
	cli.AddFlags(cmd.Flags(), runOptions{jobOpts: defaultJob("serial,goroutines,processes"), fleetOpts: defaultFleet(), Repeat: 3})
	return cmd
}

func runRun(ctx context.Context, cmd *cobra.Command, o *runOptions) error {
	log, err := o.logger()
	if err != nil {
		return err
	}
	cfg, stop, err := o.labWithExec(cmd, o, log)
	if err != nil {
		return err
	}
	defer stop()
	cfg.Repeat, cfg.Wide = o.Repeat, o.Wide
	cfg.Fleet = o.fleet(fleet.Config{MaxPayload: o.MaxPayload})
	if err := cfg.Fleet.Validate(); err != nil {
		return cli.Invalid("max_payload", o.MaxPayload, "must be between 1 and 64 MiB")
	}
	return lab.Run(ctx, cfg)
}
