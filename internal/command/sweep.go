package command

import (
	"time"

	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/internal/cli"
	"github.com/ferrylab/ferry/internal/progress"
	"github.com/ferrylab/ferry/lab"
	"github.com/ferrylab/ferry/lab/sweep"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

type sweepOptions struct {
	logOpts      `mapstructure:",squash" flags:"root"`
	jobOpts      `mapstructure:",squash"`
	fleetOpts    `mapstructure:",squash"`
	BatchSizes   string        `mapstructure:"batch_sizes" help:"batch sizes to sweep; auto adds an auto-batched point"`
	WorkerCounts string        `mapstructure:"worker_counts" help:"worker counts to sweep (default 1..2x usable cores; recommend: usable cores)"`
	Codecs       string        `mapstructure:"codecs" help:"codecs to sweep (default --codec)"`
	SpinCosts    string        `mapstructure:"spin_costs" help:"spin CPU per document to sweep, e.g. 10us,100us,1ms (default --spin-cost)"`
	OutSizes     string        `mapstructure:"out_sizes" help:"spin output bytes per document to sweep (default --out-bytes)"`
	DocSizes     string        `mapstructure:"doc_sizes" help:"bytes per generated document to sweep (default --doc-bytes)"`
	Repeats      int           `mapstructure:"repeats" help:"runs of each point"`
	PointTime    time.Duration `mapstructure:"point_time" help:"aimed wall time of one run"`
	Records      string        `mapstructure:"records" help:"write every run as it finishes to FILE (.jsonl or .csv)"`
	Analyze      string        `mapstructure:"analyze" help:"run nothing: analyse the runs in a records FILE (.jsonl or .csv) written by --records"`
	Report       string        `mapstructure:"report" help:"write a self-contained HTML report to FILE"`
}

func newCmdSweep() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sweep",
		Short: "Measure a grid of batch sizes, workers, codecs and modes; fit the break-even batch size",
		Long: `sweep starts one embedded NATS server and one pool of worker processes (as
many as the largest worker count), then runs every point of the grid
(modes x worker counts x batch sizes x codecs x spin costs x payload sizes)
--repeats times, in a seeded random order with the repeats interleaved, so
drift of the machine does not look like an effect. Each point's document
count is chosen so one run takes about --point-time.

It prints each point's median throughput and spread, fits t(b) = a + c*b per
mode, and reports the batch size where processes reach 95% of goroutines'
throughput, predicted by the fit and observed in the sweep. --records keeps
every run (JSON lines or CSV, flushed as each finishes); --report writes a
self-contained HTML report. Ctrl-C stops and still writes what was measured.
--analyze FILE runs nothing: it reads a records file and prints (and renders)
its analysis again, for instance after a change to the model.`,
		Example: `  ferry sweep --workload spin --spin-cost 100us
  ferry sweep --workload spin --spin-costs 10us,100us,1ms --out-sizes 16,4096 --worker-counts 2 --records runs.jsonl
  ferry sweep --workload embed --batch-sizes 1,16,64,256,auto --report sweep.html --format json > sweep.json
  ferry sweep --analyze runs.jsonl --report sweep.html`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSweep(cmd, false) },
	}
	addSweepFlags(cmd.Flags(), "modes to sweep")
	return cmd
}

func newCmdRecommend() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "recommend",
		Short: "Run a small sweep of your workload and print the batch size to use, in one line",
		Long: `recommend sweeps goroutines and processes at the usable cores (or
--worker-counts) over --batch-sizes for your workload settings, fits the
break-even model and prints one line: the smallest batch size whose
predicted processes overhead against goroutines is at most
--overhead-target, with the fit behind it. --docs, when given, caps the
batch so every worker still gets two batches.`,
		Example: `  ferry recommend --workload spin --spin-cost 100us
  ferry recommend --workload embed --overhead-target 0.10 --docs 50000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSweep(cmd, true) },
	}
	addSweepFlags(cmd.Flags(), "modes compared (goroutines and processes are needed)")
	return cmd
}

// addSweepFlags registers the job flags that make sense for a sweep (the
// others are hidden: each point sets its own) and the sweep's own.
func addSweepFlags(fs *pflag.FlagSet, modesUsage string) {
	cli.AddFlags(fs, sweepOptions{jobOpts: defaultJob("goroutines,processes"), fleetOpts: defaultFleet(),
		BatchSizes: "1,4,16,64,256,1024", Repeats: 3, PointTime: 300 * time.Millisecond})
	fs.Lookup("modes").Usage = modesUsage
	for _, name := range []string{"batch-size", "batch", "input", "max-docs", "out", "workers"} {
		fs.Lookup(name).Hidden = true
	}
	fs.Lookup("docs").Usage = "recommend: the job's documents, to cap the batch so every worker gets two (sweep: ignored)"
	fs.Lookup("format").Usage = "output format: text or json"
}

// runSweep runs ferry sweep, or ferry recommend when recommend is set.
func runSweep(cmd *cobra.Command, recommend bool) error {
	var o sweepOptions
	if err := cli.Load(cmd, &o); err != nil {
		return err
	}
	log, err := o.logger()
	if err != nil {
		return err
	}
	grid, err := sweep.ParseGrid(sweep.GridSpec{
		Modes: o.Modes, BatchSizes: o.BatchSizes, WorkerCounts: o.WorkerCounts, Codecs: o.Codecs,
		SpinCosts: o.SpinCosts, OutSizes: o.OutSizes, DocSizes: o.DocSizes,
		Codec: o.Codec, SpinCost: o.SpinCost, OutBytes: o.OutBytes, DocBytes: o.DocBytes,
	})
	if err != nil {
		return err
	}
	o.BatchSize = 0 // the coordinator's default: each point sets its own
	stop, err := o.startExec(o.Workload, 0)
	if err != nil {
		return err
	}
	defer stop()
	job, err := o.job()
	if err != nil {
		return err
	}
	grid.Workload, grid.DocWords, grid.Params = o.Workload, o.DocWords, job.Params
	cfg := lab.SweepConfig{
		Sweep:     sweep.Config{Grid: grid, Repeats: o.Repeats, Seed: o.Seed, PointTime: o.PointTime, Job: job},
		Recommend: recommend, Docs: o.Docs, Analyze: o.Analyze, Records: o.Records, HTML: o.Report,
		Fleet:  o.fleet(fleet.Config{MaxPayload: o.MaxPayload}),
		Report: cli.Echo(&o), Format: o.Format, Stdout: cmd.OutOrStdout(), Logger: log,
	}
	if !o.Quiet {
		cfg.Progress = progress.Runs
	}
	return lab.RunSweep(cmd.Context(), cfg)
}
