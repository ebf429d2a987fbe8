package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/lab"
	"github.com/ferrylab/ferry/lab/sweep"
	"github.com/ferrylab/ferry/proto"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

type sweepOptions struct {
	logOpts      `mapstructure:",squash"`
	jobOpts      `mapstructure:",squash"`
	BatchSizes   string        `mapstructure:"batch_sizes"`
	WorkerCounts string        `mapstructure:"worker_counts"`
	Codecs       string        `mapstructure:"codecs"`
	SpinCosts    string        `mapstructure:"spin_costs"`
	OutSizes     string        `mapstructure:"out_sizes"`
	DocSizes     string        `mapstructure:"doc_sizes"`
	Repeats      int           `mapstructure:"repeats"`
	PointTime    time.Duration `mapstructure:"point_time"`
	Records      string        `mapstructure:"records"`
	Analyze      string        `mapstructure:"analyze"`
	Report       string        `mapstructure:"report"`
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
	addJobFlags(fs, "goroutines,processes")
	addMaxPayloadFlag(fs)
	fs.Lookup("modes").Usage = modesUsage
	for _, name := range []string{"batch-size", "batch", "input", "max-docs", "out", "workers"} {
		fs.Lookup(name).Hidden = true
	}
	fs.Lookup("docs").Usage = "recommend: the job's documents, to cap the batch so every worker gets two (sweep: ignored)"
	fs.Lookup("format").Usage = "output format: text or json"
	fs.String("batch-sizes", "1,4,16,64,256,1024", "batch sizes to sweep; auto adds an auto-batched point")
	fs.String("worker-counts", "", "worker counts to sweep (default 1..2x usable cores; recommend: usable cores)")
	fs.String("codecs", "", "codecs to sweep (default --codec)")
	fs.String("spin-costs", "", "spin CPU per document to sweep, e.g. 10us,100us,1ms (default --spin-cost)")
	fs.String("out-sizes", "", "spin output bytes per document to sweep (default --out-bytes)")
	fs.String("doc-sizes", "", "bytes per generated document to sweep (default --doc-bytes)")
	fs.Int("repeats", 3, "runs of each point")
	fs.Duration("point-time", 300*time.Millisecond, "aimed wall time of one run")
	fs.String("records", "", "write every run as it finishes to FILE (.jsonl or .csv)")
	fs.String("analyze", "", "run nothing: analyse the runs in a records FILE (.jsonl or .csv) written by --records")
	fs.String("report", "", "write a self-contained HTML report to FILE")
}

// runSweep runs ferry sweep, or ferry recommend when recommend is set.
func runSweep(cmd *cobra.Command, recommend bool) error {
	var o sweepOptions
	if err := load(cmd, &o); err != nil {
		return err
	}
	log, err := o.logger()
	if err != nil {
		return err
	}
	grid, err := o.grid(recommend)
	if err != nil {
		return err
	}
	if o.Format != "text" && o.Format != "json" {
		return invalid("format", o.Format, "must be text or json")
	}
	o.BatchSize = 0 // the coordinator's default: each point sets its own
	job, err := o.job()
	if err != nil {
		return err
	}
	switch {
	case o.Repeats < 1:
		return invalid("repeats", o.Repeats, "must be at least 1")
	case o.PointTime <= 0:
		return invalid("point_time", o.PointTime, "must be positive")
	}
	cm := configMap(&o)
	for _, k := range []string{"batch", "batch_size", "docs", "input", "out", "max_docs", "workers", "expect_workers"} {
		delete(cm, k) // each point sets its own
	}
	if recommend && o.Docs > 0 {
		cm["docs"] = o.Docs
	}
	grid.Params = job.Params
	cfg := lab.SweepConfig{
		Sweep:     sweep.Config{Grid: grid, Repeats: o.Repeats, Seed: o.Seed, PointTime: o.PointTime, Job: job},
		Recommend: recommend, Docs: o.Docs, Analyze: o.Analyze, Records: o.Records, HTML: o.Report,
		Fleet:  fleet.Config{MaxPayload: o.MaxPayload},
		Report: cm, Format: o.Format, Stdout: cmd.OutOrStdout(), Logger: log,
	}
	if !o.Quiet && term.IsTerminal(int(os.Stderr.Fd())) {
		cfg.Progress = sweepProgress
	}
	return lab.RunSweep(cmd.Context(), cfg)
}

// grid builds the sweep grid from the options.
func (o *sweepOptions) grid(recommend bool) (sweep.Grid, error) {
	g := sweep.Grid{Workload: o.Workload, DocWords: o.DocWords}
	var err error
	if g.Modes, err = parseList(o.Modes, "modes", oneOf(coordinator.Modes())); err != nil {
		return g, err
	}
	if g.BatchSizes, err = parseList(o.BatchSizes, "batch_sizes", func(s string) (int, error) {
		if s == "auto" {
			return 0, nil // the grid's auto-batched point
		}
		return atLeast(1)(s)
	}); err != nil {
		return g, err
	}
	if g.Workers, err = parseList(o.WorkerCounts, "worker_counts", atLeast(1)); err != nil {
		return g, err
	}
	if recommend && len(g.Workers) == 0 {
		g.Workers = []int{runtime.GOMAXPROCS(0)}
	}
	if g.Codecs, err = parseList(o.Codecs, "codecs", oneOf(proto.CodecNames())); err != nil {
		return g, err
	}
	if g.SpinCosts, err = parseList(o.SpinCosts, "spin_costs", time.ParseDuration); err != nil {
		return g, err
	}
	if g.OutBytes, err = parseList(o.OutSizes, "out_sizes", atLeast(0)); err != nil {
		return g, err
	}
	if g.DocBytes, err = parseList(o.DocSizes, "doc_sizes", atLeast(0)); err != nil {
		return g, err
	}
	g.Codecs = orOne(g.Codecs, o.Codec)
	g.SpinCosts = orOne(g.SpinCosts, o.SpinCost)
	g.OutBytes = orOne(g.OutBytes, o.OutBytes)
	g.DocBytes = orOne(g.DocBytes, o.DocBytes)
	return g, nil
}

// orOne is list, or the one value v when list is empty.
func orOne[T any](list []T, v T) []T {
	if len(list) == 0 {
		return []T{v}
	}
	return list
}

// atLeast parses an integer of at least lo.
func atLeast(lo int) func(string) (int, error) {
	return func(s string) (int, error) {
		n, err := strconv.Atoi(s)
		if err == nil && n < lo {
			err = fmt.Errorf("must be at least %d", lo)
		}
		return n, err
	}
}

// sweepProgress is a bar counting runs on stderr, with rate and ETA.
func sweepProgress(total int) (func(sweep.Record, int), func()) {
	bar := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription("sweep"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetItsString("runs"),
		progressbar.OptionShowIts(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	return func(r sweep.Record, done int) {
			bar.Describe(fmt.Sprintf("%-10s w=%d b=%-4s", r.Mode, r.Workers, r.Batch()))
			_ = bar.Set(done)
		}, func() {
			_ = bar.Finish()
			_ = bar.Exit()
		}
}
