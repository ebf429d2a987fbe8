package command

import (
	"github.com/ferrylab/ferry/internal/cli"
	"github.com/ferrylab/ferry/internal/spawn"
	"github.com/ferrylab/ferry/lab"
	"github.com/spf13/cobra"
)

type shardOptions struct {
	logOpts   `mapstructure:",squash" flags:"root"`
	natsOpts  `mapstructure:",squash"`
	ParentPID int `mapstructure:"parent_pid" hidden:"true" help:"exit when this process is no longer the parent"`
}

// newCmdShard is one coordinator of a sharded job: a child of the process
// that shards it (lab, coordinators > 1), never run by hand.
func newCmdShard() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "shard SPEC",
		Short:  "One coordinator of a job sharded over several (started by ferry itself)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var o shardOptions
			if err := cli.Load(cmd, &o); err != nil {
				return err
			}
			log, err := o.logger()
			if err != nil {
				return err
			}
			ctx, cancel := spawn.ParentContext(cmd.Context(), o.ParentPID)
			defer cancel()
			return lab.RunShard(ctx, lab.ShardConfig{Spec: args[0], URL: o.NATSURL, Auth: o.auth(), Stdout: cmd.OutOrStdout(), Logger: log})
		},
	}
	cli.AddFlags(cmd.Flags(), shardOptions{natsOpts: defaultNATS})
	return cmd
}
