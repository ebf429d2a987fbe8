package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferrylab/ferry/internal/machine"
	"github.com/ferrylab/ferry/internal/spawn"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/lab/sweep"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/report"
	"github.com/ferrylab/ferry/workload"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

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
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := loadOptions(cmd)
			if err != nil {
				return err
			}
			return runSweep(cmd.Context(), o, cmd.OutOrStdout(), false)
		},
	}
	fs := cmd.Flags()
	fs.String("modes", "goroutines,processes", "modes to sweep: "+fmt.Sprint(coordinator.Modes()))
	addSweepFlags(fs)
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
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := loadOptions(cmd)
			if err != nil {
				return err
			}
			return runSweep(cmd.Context(), o, cmd.OutOrStdout(), true)
		},
	}
	fs := cmd.Flags()
	fs.String("modes", "goroutines,processes", "modes compared (goroutines and processes are needed)")
	addSweepFlags(fs)
	return cmd
}

// addSweepFlags registers the job flags that make sense for a sweep (the
// others are hidden: each point sets its own) and the sweep's own.
func addSweepFlags(fs *pflag.FlagSet) {
	addJobFlags(fs)
	for _, name := range []string{"batch-size", "batch", "input", "max-docs", "out", "expect-workers", "workers"} {
		if f := fs.Lookup(name); f != nil {
			f.Hidden = true
		}
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
	fs.Int("max-payload", broker.DefaultMaxPayload, "embedded broker's max message size in bytes")
}

// grid builds the sweep grid from the options.
func (o *Options) grid(recommend bool) (sweep.Grid, error) {
	g := sweep.Grid{Workload: o.Workload, DocWords: o.DocWords}
	var err error
	if g.Modes, err = o.modes(); err != nil {
		return g, err
	}
	if recommend && (!slices.Contains(g.Modes, coordinator.ModeGoroutines) || !slices.Contains(g.Modes, coordinator.ModeProcesses)) {
		return g, invalid("modes", o.Modes, "recommend compares goroutines with processes; list both")
	}
	if g.BatchSizes, err = parseList(o.BatchSizes, "batch_sizes", func(s string) (int, error) {
		if s == "auto" {
			return 0, nil
		}
		n, err := strconv.Atoi(s)
		if err == nil && n < 1 {
			err = errors.New("must be at least 1")
		}
		return n, err
	}); err != nil {
		return g, err
	}
	nonNegative := func(key string) func(string) (int, error) {
		return func(s string) (int, error) {
			n, err := strconv.Atoi(s)
			if err == nil && n < 0 {
				err = fmt.Errorf("%s must be positive", key)
			}
			return n, err
		}
	}
	if g.Workers, err = parseList(o.WorkerCounts, "worker_counts", nonNegative("worker_counts")); err != nil {
		return g, err
	}
	if slices.Contains(g.Workers, 0) {
		return g, invalid("worker_counts", o.WorkerCounts, "must be at least 1")
	}
	if recommend && len(g.Workers) == 0 {
		g.Workers = []int{runtime.GOMAXPROCS(0)}
	}
	if g.Codecs, err = parseList(o.Codecs, "codecs", func(s string) (string, error) {
		if !slices.Contains(proto.CodecNames(), s) {
			return "", fmt.Errorf("must be one of %v", proto.CodecNames())
		}
		return s, nil
	}); err != nil {
		return g, err
	}
	if len(g.Codecs) == 0 {
		g.Codecs = []string{o.Codec}
	}
	if g.SpinCosts, err = parseList(o.SpinCosts, "spin_costs", time.ParseDuration); err != nil {
		return g, err
	}
	if len(g.SpinCosts) == 0 {
		g.SpinCosts = []time.Duration{o.SpinCost}
	}
	if g.OutBytes, err = parseList(o.OutSizes, "out_sizes", nonNegative("out_sizes")); err != nil {
		return g, err
	}
	if len(g.OutBytes) == 0 {
		g.OutBytes = []int{o.OutBytes}
	}
	if g.DocBytes, err = parseList(o.DocSizes, "doc_sizes", nonNegative("doc_sizes")); err != nil {
		return g, err
	}
	if len(g.DocBytes) == 0 {
		g.DocBytes = []int{o.DocBytes}
	}
	return g, nil
}

// parseList parses a comma-separated list, naming key on error.
func parseList[T any](s, key string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := parse(f)
		if err != nil {
			return nil, invalid(key, s, fmt.Sprintf("%q: %v", f, err))
		}
		out = append(out, v)
	}
	return out, nil
}

// runSweep runs ferry sweep, or ferry recommend when recommend is set.
func runSweep(ctx context.Context, o *Options, stdout io.Writer, recommend bool) error {
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
	if o.Analyze != "" {
		res, err := analyzeRecords(o)
		if err != nil {
			return err
		}
		return writeSweep(stdout, o, res, recommend, nil)
	}
	o.BatchSize, o.Batch = 1, "fixed" // each point sets its own; these only pass validation
	job, err := o.job()
	if err != nil {
		return err
	}
	cfg := sweep.Config{Grid: grid, Repeats: o.Repeats, Seed: o.Seed, PointTime: o.PointTime, Job: job, Log: log}
	cfg.Params = job.Params
	if o.Repeats < 1 {
		return invalid("repeats", o.Repeats, "must be at least 1")
	}
	if o.PointTime <= 0 {
		return invalid("point_time", o.PointTime, "must be positive")
	}
	var records *sweep.RecordWriter
	if o.Records != "" {
		if records, err = sweep.CreateRecords(o.Records); err != nil {
			return invalid("records", o.Records, err.Error())
		}
		defer records.Close()
	}
	if slices.Contains(grid.Modes, coordinator.ModeProcesses) {
		if o.MaxPayload <= 0 || o.MaxPayload > 64<<20 {
			return invalid("max_payload", o.MaxPayload, "must be between 1 and 64 MiB")
		}
		creds := newRunCredentials()
		b, err := broker.Start(ctx, broker.Options{MaxPayload: int32(o.MaxPayload), Users: creds.users()})
		if err != nil {
			return err
		}
		defer b.Shutdown()
		pool, err := spawn.Start(ctx, spawn.Config{
			Args:    []string{"worker", "--log-level", "warn", "--parent-pid", strconv.Itoa(osGetpid())},
			Env:     append(childEnv(b.URL(), creds.worker), spinEnv(grid.Workload)...), // not argv: ps shows argv to everyone
			Procs:   grid.MaxWorkers(),
			Logger:  log,
			Restart: true,
		})
		if err != nil {
			return err
		}
		defer pool.Stop() // shutdown order: workers first (they drain), then the broker
		nc, err := connect(b.URL(), "ferry-sweep", creds.coordinator, log, b.InProcess())
		if err != nil {
			return err
		}
		defer nc.Close()
		cfg.NC = nc
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	bar := newSweepProgress(o, len(cfg.Points())*o.Repeats)
	cfg.OnRecord = func(r sweep.Record, done, total int) error {
		if bar != nil {
			bar.Describe(fmt.Sprintf("%-10s w=%d b=%-4s", r.Mode, r.Workers, r.Batch()))
			_ = bar.Set(done)
		}
		if records != nil {
			return records.Write(r)
		}
		return nil
	}
	start := time.Now()
	res, runErr := sweep.Run(ctx, cfg)
	if bar != nil {
		_ = bar.Finish()
		_ = bar.Exit()
	}
	if res == nil {
		return runErr
	}
	log.Info("sweep done", "runs", len(res.Records), "wall", time.Since(start).Round(time.Millisecond))
	return writeSweep(stdout, o, res, recommend, runErr)
}

// analyzeRecords reads the records file named by analyze and derives the
// sweep's result from it, seeded for its bootstrap intervals by seed.
func analyzeRecords(o *Options) (*sweep.Result, error) {
	f, err := os.Open(o.Analyze)
	if err != nil {
		return nil, invalid("analyze", o.Analyze, err.Error())
	}
	defer f.Close()
	recs, err := sweep.ReadRecords(f)
	if err != nil {
		return nil, invalid("analyze", o.Analyze, err.Error())
	}
	if len(recs) == 0 {
		return nil, invalid("analyze", o.Analyze, "no records in the file")
	}
	return sweep.Analyze(recs, o.OverheadTarget, o.Seed), nil
}

// writeSweep writes a sweep's result: the HTML report if asked for, then
// the recommendation line (recommend) or the summary; runErr, the sweep's
// own error (an interrupt), is returned with any error of writing.
func writeSweep(stdout io.Writer, o *Options, res *sweep.Result, recommend bool, runErr error) error {
	cm := o.configMap()
	for _, k := range []string{"batch", "batch_size", "docs", "input", "out", "max_docs", "workers", "expect_workers"} {
		delete(cm, k) // each point sets its own
	}
	if recommend && o.Docs > 0 {
		cm["docs"] = o.Docs
	}
	rep := report.NewSweep(machine.Probe(), cm, res)
	if o.Report != "" {
		if err := writeHTML(o.Report, rep); err != nil {
			return errors.Join(runErr, err)
		}
	}
	if recommend {
		if err := printRecommendation(stdout, o, res); err != nil {
			return errors.Join(runErr, err)
		}
		return runErr
	}
	if err := report.WriteSweep(stdout, rep, o.Format); err != nil {
		return errors.Join(runErr, fmt.Errorf("write report: %w", err))
	}
	return runErr
}

func writeHTML(path string, rep *report.SweepReport) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create report: %w", err)
	}
	if err := report.WriteHTML(f, rep); err != nil {
		f.Close()
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return f.Close()
}

// printRecommendation prints the one line of ferry recommend (JSON with
// --format json): the break-even of the largest worker count swept.
func printRecommendation(w io.Writer, o *Options, res *sweep.Result) error {
	if len(res.BreakEvens) == 0 {
		return errors.New("recommend: no break-even could be fitted (every run failed?)")
	}
	be := res.BreakEvens[0]
	for _, b := range res.BreakEvens {
		if b.Workers > be.Workers {
			be = b
		}
	}
	line := report.Recommendation(be, res.Target)
	if limit := o.Docs / int64(2*be.Workers); o.Docs > 0 && be.Recommended > 0 && int64(be.Recommended) > limit {
		line = fmt.Sprintf("batch_size=%d (capped from %d so %d documents give every worker two batches) %s",
			max(limit, 1), be.Recommended, o.Docs, strings.TrimPrefix(line, fmt.Sprintf("batch_size=%d ", be.Recommended)))
	}
	if o.Format == "json" {
		return writeJSON(w, map[string]any{"recommendation": line, "break_even": be, "overhead_target": res.Target})
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

// newSweepProgress returns a bar counting runs on stderr, with rate and
// ETA, when stderr is a terminal and output is not quiet; nil otherwise.
func newSweepProgress(o *Options, total int) *progressbar.ProgressBar {
	if o.Quiet || !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	return progressbar.NewOptions(total,
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
}

// spinEnv pins the spin calibration of the workers started here to this
// process's, so every mode spins the same iterations per document (see
// workload.SpinRateEnv); nil for other workloads.
func spinEnv(name string) []string {
	if name != "spin" {
		return nil
	}
	return []string{workload.SpinRateEnv + "=" + strconv.FormatFloat(workload.SpinIterationsPerUs(), 'g', -1, 64)}
}
