package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/internal/machine"
	"github.com/ferrylab/ferry/lab/capacity"
	"github.com/ferrylab/ferry/report"
	"github.com/ferrylab/ferry/sink"
)

// CapacityConfig configures RunCapacity: ferry capacity.
type CapacityConfig struct {
	// Capacity is the experiment; Docs, Start and CPU are set here.
	Capacity capacity.Config
	// Corpus generates the documents, of which the first DistinctDocs are
	// made before any run and cycled (generating costs the coordinator
	// about 5 us per document, which would be charged to it).
	Corpus corpus.GenConfig
	// Fleet configures each fleet started (its max payload, the binary);
	// Workers and BrokerProcs are set per fleet.
	Fleet  fleet.Config
	HTML   string         // write the HTML report to this file; "" = none
	Report map[string]any // the configuration echoed in the report
	Format string         // text or json
	Stdout io.Writer
	Logger *slog.Logger
}

// DistinctDocs is how many distinct documents a capacity run generates.
const DistinctDocs = 20_000

// RunCapacity measures, fits, predicts and validates (capacity.Run), then
// writes the report; an interrupt still writes what was measured.
func RunCapacity(ctx context.Context, cfg CapacityConfig) error {
	log := orDiscard(cfg.Logger)
	cfg.Stdout = orStdout(cfg.Stdout)
	if cfg.Format != "text" && cfg.Format != "json" {
		return fmt.Errorf("%w: format=%s: must be text or json", coordinator.ErrInvalidConfig, cfg.Format)
	}
	gen := cfg.Corpus
	gen.Docs = DistinctDocs
	g, err := corpus.Generated(gen)
	if err != nil {
		return fmt.Errorf("%w: %v", coordinator.ErrInvalidConfig, err)
	}
	cc := cfg.Capacity
	cc.Docs = make([]string, DistinctDocs)
	for i := range cc.Docs {
		cc.Docs[i] = g.Doc(int64(i)).Text
	}
	cc.CPU, cc.Log = fleet.ProcessCPU, log
	cc.Start = func(ctx context.Context, nodes, workers int) (capacity.Fleet, func(), error) {
		fc := cfg.Fleet
		fc.Workers, fc.BrokerProcs, fc.Workload, fc.Name, fc.Logger = workers, nodes, "sleep", "ferry-capacity", log
		f, err := fleet.Start(ctx, fc)
		if err != nil {
			return nil, nil, err
		}
		return f, f.Close, nil
	}
	cc.Sharded = func(ctx context.Context, f capacity.Fleet, job coordinator.Config, workers, n int, file string, docs int64) (*coordinator.Stats, error) {
		job.Workers, job.MaxWorkers, job.Window = workers, workers, 0
		s := shards{n: n, docs: docs, exe: cfg.Fleet.Exe, env: f.(*fleet.Fleet).CoordinatorEnv, job: job,
			input: Input{Path: file, Limits: corpus.Limits{MaxDocBytes: job.Limits.MaxDocBytes}}, expect: workers, log: log}
		return s.run(ctx, sink.Discard{})
	}
	if err := cc.Validate(); err != nil {
		return err
	}
	res, runErr := capacity.Run(ctx, cc)
	if res == nil {
		return runErr
	}
	rep := report.NewCapacity(machine.Probe(), cfg.Report, res)
	if cfg.HTML != "" {
		if err := writeHTML(cfg.HTML, func(w io.Writer) error { return report.WriteCapacityHTML(w, rep) }); err != nil {
			return errors.Join(runErr, err)
		}
	}
	if err := report.WriteCapacity(cfg.Stdout, rep, cfg.Format); err != nil {
		return errors.Join(runErr, fmt.Errorf("write report: %w", err))
	}
	return runErr
}
