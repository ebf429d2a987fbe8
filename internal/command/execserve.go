package command

import (
	"os"

	"github.com/ferrylab/ferry/bridge"
	"github.com/ferrylab/ferry/internal/cli"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/worker"
	"github.com/spf13/cobra"
)

type execServeOptions struct {
	logOpts     `mapstructure:",squash" flags:"root"`
	Workload    string `mapstructure:"workload" help:"the workload of this binary to serve"`
	MaxDocBytes int    `mapstructure:"max_doc_bytes" help:"reject batches with a document larger than this"`
}

func newCmdExecServe() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exec-serve",
		Short: "Serve a workload of this binary as an exec program: frames on stdin and stdout",
		Long: `exec-serve is the program end of the exec frames (docs/protocol.md), in Go:
it reads batch requests on stdin until it ends, computes each with
--workload (with the params each request carries) and writes the replies on
stdout. Run as a worker's --exec program, it computes exactly what the
workload compiled into the worker does, with the pipe hop in between: how
the cost of that hop is measured (scripts/workloads.sh), and the
reference for a program in another language.`,
		Example: `  ferry run --workload exec --exec 'ferry exec-serve --workload embed'
  ferry worker --nats-url nats://broker:4222 --exec './minhash exec-serve --workload minhash'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var o execServeOptions
			if err := cli.Load(cmd, &o); err != nil {
				return err
			}
			if o.Workload == bridge.Name {
				return cli.Invalid("workload", o.Workload, "exec-serve serves a workload computed in this binary")
			}
			worker.OneCore() // one batch at a time, like a worker
			return bridge.Serve(os.Stdin, os.Stdout, bridge.ServeConfig{
				Workload: o.Workload, Limits: proto.Limits{MaxDocBytes: o.MaxDocBytes}, BeforeBatch: bridge.CrashHook(),
			})
		},
	}
	cli.AddFlags(cmd.Flags(), execServeOptions{Workload: "embed", MaxDocBytes: proto.DefaultMaxDocBytes})
	return cmd
}
