package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/internal/machine"
	"github.com/ferrylab/ferry/lab/sweep"
	"github.com/ferrylab/ferry/report"
)

// SweepConfig configures RunSweep: ferry sweep, or ferry recommend.
type SweepConfig struct {
	Sweep     sweep.Config // the grid and its runs; NC and OnRecord are set here
	Recommend bool         // print the one-line recommendation instead of the summary
	Docs      int64        // recommend: the job's documents, to cap the batch; 0 = no cap
	Analyze   string       // run nothing: analyse this records file (.jsonl or .csv)
	Records   string       // write every run to this file as it finishes; "" = none
	HTML      string       // write the HTML report to this file; "" = none
	Fleet     fleet.Config // the local fleet, when the grid holds processes
	Report    map[string]any
	Format    string // text or json
	Stdout    io.Writer
	Progress  func(total int) (set func(desc string, done int), done func()) // nil = none
	Logger    *slog.Logger
}

// RunSweep runs the sweep (or analyses a records file) and writes its
// report; an interrupt still writes what was measured.
func RunSweep(ctx context.Context, cfg SweepConfig) error {
	log := orDiscard(cfg.Logger)
	cfg.Stdout = orStdout(cfg.Stdout)
	sc := cfg.Sweep
	sc.Log = log
	switch {
	case cfg.Format != "text" && cfg.Format != "json":
		return fmt.Errorf("%w: format=%s: must be text or json", coordinator.ErrInvalidConfig, cfg.Format)
	case sc.Repeats < 1:
		return fmt.Errorf("%w: repeats=%d: must be at least 1", coordinator.ErrInvalidConfig, sc.Repeats)
	case sc.PointTime <= 0:
		return fmt.Errorf("%w: point_time=%s: must be positive", coordinator.ErrInvalidConfig, sc.PointTime)
	}
	if cfg.Recommend && len(sc.Workers) == 0 {
		sc.Workers = []int{runtime.GOMAXPROCS(0)} // recommend: the usable cores
	}
	if cfg.Report == nil {
		cfg.Report = map[string]any{}
	}
	for _, k := range []string{"batch", "batch_size", "docs", "input", "out", "max_docs", "workers", "expect_workers"} {
		delete(cfg.Report, k) // each point sets its own
	}
	if cfg.Recommend && cfg.Docs > 0 {
		cfg.Report["docs"] = cfg.Docs
	}
	if cfg.Recommend && (!slices.Contains(sc.Modes, coordinator.ModeGoroutines) || !slices.Contains(sc.Modes, coordinator.ModeProcesses)) {
		return fmt.Errorf("%w: modes=%s: recommend compares goroutines with processes; list both", coordinator.ErrInvalidConfig, strings.Join(sc.Modes, ","))
	}
	if cfg.Analyze != "" {
		res, err := analyzeRecords(cfg.Analyze, sc.Job.OverheadTarget, sc.Seed)
		if err != nil {
			return err
		}
		return writeSweep(cfg, res, nil)
	}
	var records *sweep.RecordWriter
	if cfg.Records != "" {
		var err error
		if records, err = sweep.CreateRecords(cfg.Records); err != nil {
			return fmt.Errorf("%w: records=%s: %v", coordinator.ErrInvalidConfig, cfg.Records, err)
		}
		defer records.Close()
	}
	if slices.Contains(sc.Modes, coordinator.ModeProcesses) {
		fc := cfg.Fleet
		fc.Workers, fc.Workload, fc.Name, fc.Logger = sc.MaxWorkers(), sc.Workload, "ferry-sweep", log
		fc.Echo = slices.Contains(sc.BatchSizes, 0) // auto points: the hop's CPU, measured once
		f, err := fleet.Start(ctx, fc)
		if err != nil {
			return err
		}
		defer f.Close()
		sc.NC = f.Conn()
		// Idle workers cost next to nothing, so one clock over the whole
		// pool serves every point, in-process modes included.
		sc.CPU = fleet.CPUClock{PIDs: f.WorkerPIDs, Descendants: true}.Now
		if echo := f.Echo(); echo != nil && fc.BrokerProcs == 0 { // a broker in this process, which the clock reads
			sc.HopCPU = onceHopCPU(log, f.Conn(), echo.Subject, sc.Job.WithDefaults().InFlight, fleet.CPUClock{PIDs: echo.PIDs}.Now)(ctx)
		}
	} else {
		sc.CPU = fleet.CPUClock{Descendants: true}.Now
	}
	if err := sc.Validate(); err != nil {
		return err
	}
	set, done := func(string, int) {}, func() {}
	if cfg.Progress != nil {
		set, done = cfg.Progress(len(sc.Points()) * max(sc.Repeats, 1))
	}
	sc.OnRecord = func(r sweep.Record, n, _ int) error {
		set(fmt.Sprintf("%-10s w=%d b=%-4s", r.Mode, r.Workers, r.Batch()), n)
		if records != nil {
			return records.Write(r)
		}
		return nil
	}
	start := time.Now()
	res, runErr := sweep.Run(ctx, sc)
	done()
	if res == nil {
		return runErr
	}
	log.Info("sweep done", "runs", len(res.Records), "wall", time.Since(start).Round(time.Millisecond))
	return writeSweep(cfg, res, runErr)
}

// analyzeRecords reads a records file and derives the sweep's result from
// it, seeded for its bootstrap intervals by seed.
func analyzeRecords(path string, target float64, seed uint64) (*sweep.Result, error) {
	bad := func(why string) error {
		return fmt.Errorf("%w: analyze=%s: %s", coordinator.ErrInvalidConfig, path, why)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, bad(err.Error())
	}
	defer f.Close()
	recs, err := sweep.ReadRecords(f)
	if err != nil {
		return nil, bad(err.Error())
	}
	if len(recs) == 0 {
		return nil, bad("no records in the file")
	}
	return sweep.Analyze(recs, target, seed), nil
}

// writeSweep writes a sweep's result: the HTML report if asked for, then
// the recommendation line (recommend) or the summary; runErr, the sweep's
// own error (an interrupt), is returned with any error of writing.
func writeSweep(cfg SweepConfig, res *sweep.Result, runErr error) error {
	rep := report.NewSweep(machine.Probe(), cfg.Report, res)
	if cfg.HTML != "" {
		if err := writeHTML(cfg.HTML, func(w io.Writer) error { return report.WriteHTML(w, rep) }); err != nil {
			return errors.Join(runErr, err)
		}
	}
	if cfg.Recommend {
		if err := printRecommendation(cfg.Stdout, cfg, res); err != nil {
			return errors.Join(runErr, err)
		}
		return runErr
	}
	if err := report.WriteSweep(cfg.Stdout, rep, cfg.Format); err != nil {
		return errors.Join(runErr, fmt.Errorf("write report: %w", err))
	}
	return runErr
}

// writeHTML creates path and renders an HTML report into it.
func writeHTML(path string, render func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create report: %w", err)
	}
	if err := render(f); err != nil {
		f.Close()
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return f.Close()
}

// printRecommendation prints the one line of ferry recommend (JSON with
// format json): the break-even of the largest worker count swept.
func printRecommendation(w io.Writer, cfg SweepConfig, res *sweep.Result) error {
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
	docs, rec := cfg.Docs, be.BatchSize() // CPU-based when CPU was measured
	if limit := docs / int64(2*be.Workers); docs > 0 && rec > 0 && int64(rec) > limit {
		line = fmt.Sprintf("batch_size=%d (capped from %d so %d documents give every worker two batches) %s",
			max(limit, 1), rec, docs, strings.TrimPrefix(line, fmt.Sprintf("batch_size=%d ", rec)))
	}
	if cfg.Format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"recommendation": line, "break_even": be, "overhead_target": res.Target})
	}
	_, err := fmt.Fprintln(w, line)
	return err
}
