package command

import (
	"fmt"
	"os"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/internal/cli"
	"github.com/ferrylab/ferry/internal/list"
	"github.com/ferrylab/ferry/lab"
	"github.com/ferrylab/ferry/lab/capacity"
	"github.com/ferrylab/ferry/workload"
	"github.com/spf13/cobra"
)

type capacityOptions struct {
	logOpts         `mapstructure:",squash" flags:"root"`
	BatchSize       int           `mapstructure:"batch_size" help:"documents per batch"`
	SpinCost        time.Duration `mapstructure:"spin_cost" help:"compute per document to emulate (the workers wait this long per document)"`
	OutBytes        int           `mapstructure:"out_bytes" help:"result bytes per document (1536 is a 384-dim float32 embedding)"`
	DocWords        int           `mapstructure:"doc_words" help:"words per generated document"`
	DocBytes        int           `mapstructure:"doc_bytes" help:"exact bytes per generated document, overriding --doc-words (0 = off)"`
	Seed            uint64        `mapstructure:"seed" help:"corpus seed"`
	Codec           string        `mapstructure:"codec" help:"wire codec: packed, msgpack"`
	InFlight        int           `mapstructure:"inflight" help:"batches in flight per worker process (pipelining)"`
	MaxPayload      int           `mapstructure:"max_payload" help:"brokers' max message size in bytes"`
	ValidateWorkers string        `mapstructure:"validate_workers" help:"worker counts the emulated fleets are measured at, against the prediction"`
	KneeAt          float64       `mapstructure:"knee_at" help:"also validate the job with the compute per document that puts this machine's predicted knee at this many workers (0 = don't)"`
	ValidateCluster bool          `mapstructure:"validate_cluster" help:"also calibrate and validate on a 3-node broker cluster"`
	Layouts         string        `mapstructure:"layouts" help:"layouts to predict, ';' separated: coordinator=C,broker=B (cores on machines of their own) or shared=S, with nodes=3 (the cluster) and coordinators=N (N coordinators, each on C cores)"`
	RunTime         time.Duration `mapstructure:"run_time" help:"aimed wall time of each calibration and validation run"`
	Repeats         int           `mapstructure:"repeats" help:"runs of each series at each worker count, in turn; the goals read their medians"`
	ValidateCoords  int           `mapstructure:"validate_coordinators" help:"also run the knee series at the most workers with its input sharded over this many coordinator processes (1 = don't)"`
	Format          string        `mapstructure:"format" short:"f" help:"output format: text or json"`
	Report          string        `mapstructure:"report" help:"write a self-contained HTML report to FILE"`
	Quiet           bool          `mapstructure:"quiet" short:"q" help:"no progress output"`
}

func newCmdCapacity() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "capacity",
		Short: "Measure what one coordinator and broker can feed, predict the knee against worker count, validate it",
		Long: `capacity answers how many workers one coordinator and one broker (or a
3-node cluster) can feed, and which part saturates first.

It runs fleets whose workers emulate their compute (workload sleep: the
real result bytes, then a wait instead of CPU), with each broker node as a
process of its own, so the CPU it measures is the coordinator's, each
broker's and the workers' transport only. Runs with no compute at three
batch sizes give each part's CPU per batch, fitted as a + k*bytes on the
wire, and a CPU profile gives the coordinator's serial path. The model then
predicts docs/s against workers for the job (--batch-size, --spin-cost as
the compute per document, --out-bytes) on this machine, and fleets of
--validate-workers emulated workers measure it, --repeats times each; with
--knee-at the job is also run with the compute that puts the knee between
them, and with --validate-coordinators that series is run at the most
workers sharded over several coordinator processes. Last it predicts the
job on --layouts (cores for the coordinator and each broker node, one or
three nodes, one or more coordinators) and names each knee and its
bottleneck. See docs/capacity.md.

Everything shares this machine's cores here, and other work on it moves
the figures: rerun it on a quiet machine (scripts/capacity.sh).`,
		Example: `  ferry capacity --spin-cost 2ms --out-bytes 1536
  ferry capacity --spin-cost 2ms --out-bytes 1536 --layouts 'coordinator=2,broker=4;coordinator=8,broker=8,nodes=3' --report capacity.html
  ferry capacity --validate-workers 1,8 --validate-cluster=false --knee-at 0 --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var o capacityOptions
			if err := cli.Load(cmd, &o); err != nil {
				return err
			}
			return runCapacity(cmd, &o)
		},
	}
	c, p := coordinator.Config{}.WithDefaults(), workload.Params{}.WithDefaults()
	cli.AddFlags(cmd.Flags(), capacityOptions{
		BatchSize: c.BatchSize, SpinCost: time.Duration(p.SpinCostNs), OutBytes: p.OutBytes, DocWords: 100, Seed: 1,
		Codec: c.Codec, InFlight: c.InFlight, MaxPayload: broker.DefaultMaxPayload,
		ValidateWorkers: "1,4,16,64", KneeAt: 8, ValidateCluster: true, Layouts: defaultLayouts,
		RunTime: 2 * time.Second, Repeats: 3, ValidateCoords: 3, Format: "text",
	})
	return cmd
}

// defaultLayouts are the layouts predicted by default: a small and a
// large coordinator and broker, one pool for both, and the 3-node cluster.
const defaultLayouts = "coordinator=2,broker=4;coordinator=8,broker=8;shared=4;coordinator=2,broker=4,nodes=3;coordinator=8,broker=8,nodes=3;coordinator=8,broker=8,nodes=3,coordinators=3"

func runCapacity(cmd *cobra.Command, o *capacityOptions) error {
	log, err := o.logger()
	if err != nil {
		return err
	}
	workers, err := list.Parse(o.ValidateWorkers, "validate_workers", list.AtLeast(1))
	if err != nil {
		return err
	}
	layouts, err := capacity.ParseLayouts(o.Layouts)
	if err != nil {
		return cli.Invalid("layouts", o.Layouts, err.Error())
	}
	job := coordinator.Config{
		BatchSize: o.BatchSize, Codec: o.Codec, InFlight: o.InFlight,
		Params: workload.Params{SpinCostNs: int64(o.SpinCost), OutBytes: o.OutBytes},
	}
	cfg := lab.CapacityConfig{
		Capacity: capacity.Config{Job: job, Workers: workers, KneeAt: o.KneeAt, Cluster: o.ValidateCluster, Layouts: layouts, RunTime: o.RunTime, Repeats: o.Repeats, Coordinators: o.ValidateCoords},
		Corpus:   corpus.GenConfig{Seed: o.Seed, Words: o.DocWords, DocBytes: o.DocBytes},
		Fleet:    fleet.Config{MaxPayload: o.MaxPayload},
		HTML:     o.Report, Report: cli.Echo(o), Format: o.Format, Stdout: cmd.OutOrStdout(), Logger: log,
	}
	if !o.Quiet {
		start := time.Now()
		cfg.Capacity.Progress = func(what string) {
			fmt.Fprintf(os.Stderr, "capacity [%s] %s\n", time.Since(start).Round(time.Second), what)
		}
	}
	return lab.RunCapacity(cmd.Context(), cfg)
}
