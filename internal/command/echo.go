package command

import (
	"github.com/ferrylab/ferry/internal/cli"
	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/ferrylab/ferry/internal/spawn"
	"github.com/ferrylab/ferry/lab/floor"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/worker"
	"github.com/spf13/cobra"
)

type echoOptions struct {
	logOpts   `mapstructure:",squash" flags:"root"`
	natsOpts  `mapstructure:",squash"`
	Subject   string `mapstructure:"subject" help:"subject to answer on"`
	ParentPID int    `mapstructure:"parent_pid" help:"exit when this process is no longer the parent"`
}

func newCmdEcho() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "echo",
		Short:  "Answer every request on ferry.work.echo with its own bytes (the transport floor)",
		Hidden: true, // spawned by fleet for `ferry bench transport` and `ferry run`
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var o echoOptions
			if err := cli.Load(cmd, &o); err != nil {
				return err
			}
			log, err := o.logger()
			if err != nil {
				return err
			}
			worker.OneCore() // on the same footing as a worker
			nc, err := natsconn.Connect(o.NATSURL, "ferry-echo", o.auth(), log)
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := spawn.ParentContext(cmd.Context(), o.ParentPID)
			defer cancel()
			return floor.Echo(ctx, nc, o.Subject)
		},
	}
	cli.AddFlags(cmd.Flags(), echoOptions{natsOpts: defaultNATS, Subject: proto.EchoSubject})
	return cmd
}
