package sweep

import (
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/list"
	"github.com/ferrylab/ferry/proto"
)

// GridSpec is a grid as its config keys write it: comma-separated lists,
// "auto" among the batch sizes for an auto-batched point. An empty list
// takes the grid's default, or the one value of the job's own key.
type GridSpec struct {
	Modes, BatchSizes, WorkerCounts, Codecs, SpinCosts, OutSizes, DocSizes string

	Codec    string        // the codecs axis when Codecs is empty
	SpinCost time.Duration // the spin costs axis when SpinCosts is empty
	OutBytes int           // the out sizes axis when OutSizes is empty
	DocBytes int           // the doc sizes axis when DocSizes is empty
}

// ParseGrid parses spec into the grid's axes, naming the key at fault.
func ParseGrid(spec GridSpec) (Grid, error) {
	var g Grid
	var err error
	if g.Modes, err = list.Parse(spec.Modes, "modes", list.OneOf(coordinator.Modes())); err != nil {
		return g, err
	}
	if g.BatchSizes, err = list.Parse(spec.BatchSizes, "batch_sizes", func(s string) (int, error) {
		if s == "auto" {
			return 0, nil // the grid's auto-batched point
		}
		return list.AtLeast(1)(s)
	}); err != nil {
		return g, err
	}
	if g.Workers, err = list.Parse(spec.WorkerCounts, "worker_counts", list.AtLeast(1)); err != nil {
		return g, err
	}
	if g.Codecs, err = list.Parse(spec.Codecs, "codecs", list.OneOf(proto.CodecNames())); err != nil {
		return g, err
	}
	if g.SpinCosts, err = list.Parse(spec.SpinCosts, "spin_costs", time.ParseDuration); err != nil {
		return g, err
	}
	if g.OutBytes, err = list.Parse(spec.OutSizes, "out_sizes", list.AtLeast(0)); err != nil {
		return g, err
	}
	if g.DocBytes, err = list.Parse(spec.DocSizes, "doc_sizes", list.AtLeast(0)); err != nil {
		return g, err
	}
	g.Codecs = list.Or(g.Codecs, spec.Codec)
	g.SpinCosts = list.Or(g.SpinCosts, spec.SpinCost)
	g.OutBytes = list.Or(g.OutBytes, spec.OutBytes)
	g.DocBytes = list.Or(g.DocBytes, spec.DocBytes)
	return g, nil
}
