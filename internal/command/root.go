package command

import (
	"fmt"

	"github.com/ferrylab/ferry/internal/cli"
	"github.com/spf13/cobra"
)

func newCmdRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "ferry",
		Short: "Run batch AI work on goroutines or worker processes over NATS, and measure the boundary",
		Long: `ferry runs CPU-heavy batch work (embeddings, chunking, small-model inference)
serially, on goroutines, or on worker OS processes fed over NATS, and reports
side by side what crossing the process boundary costs.

Configuration: flags > FERRY_* environment > --config file > defaults.
Every key is listed with its default in configs/ferry.yaml.`,
		Example: `  ferry run                                 # embedded NATS, one worker process per core, all modes
  ferry run --docs 50000 --batch-size 200 --format json
  ferry broker --listen 0.0.0.0:4222 --http-port 8222
  ferry worker --nats-url nats://broker:4222 --procs 4
  ferry coordinator --nats-url nats://broker:4222 --expect-workers 4 --input docs.jsonl --out vecs.npy`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cli.AddFlags(root.PersistentFlags(), logOpts{LogLevel: "info", LogFormat: "text"})
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return fmt.Errorf("%w: %v", cli.ErrUsage, err)
	})
	root.AddCommand(newCmdRun(), newCmdBroker(), newCmdWorker(), newCmdCoordinator())
	root.AddCommand(newCmdSweep(), newCmdRecommend(), newCmdDiff())
	root.AddCommand(newCmdCapacity(), newCmdShard())
	root.AddCommand(newCmdBench(), newCmdEcho())
	root.AddCommand(newCmdHealth(), newCmdWorkloads(), newCmdExecServe())
	root.AddCommand(newCmdMockLLM(), newCmdLLM(), newCmdPipeline())
	return root
}
