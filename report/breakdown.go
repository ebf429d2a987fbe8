package report

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// CPUBreakdown is processes mode's CPU per document by process and by
// part, from a CPU profile of each process taken over the run (sampled)
// beside its CPU clock over the same interval.
type CPUBreakdown struct {
	Parts     []string     `json:"parts"`             // the parts' names, the order of CPUProcess.Parts
	Compute   string       `json:"compute_part"`      // the part that is the workload's
	Ferry     []string     `json:"ferry_parts"`       // the parts that are ferry's own work
	Processes []CPUProcess `json:"processes"`         // the coordinator (with an embedded broker), then each worker
	Missing   int          `json:"missing,omitempty"` // processes whose recording did not come back
	Batches   int64        `json:"batches"`           // batches of the run, for faults per batch
}

// CPUProcess is one process's CPU per document.
type CPUProcess struct {
	Name      string    `json:"name"`
	ClockUs   float64   `json:"clock_us_per_doc"`   // its CPU clock (getrusage) over the run
	SampledUs float64   `json:"sampled_us_per_doc"` // what its profile's samples stand for
	Samples   int       `json:"samples"`
	Parts     []float64 `json:"parts_us_per_doc"` // SampledUs split, in CPUBreakdown.Parts' order
	// HandlerUs is a worker's batch handler (decode, compute, encode,
	// reply) by its thread's CPU clock, HandlerSampledUs what the samples
	// under it stand for; 0 for other processes.
	HandlerUs        float64 `json:"handler_us_per_doc,omitempty"`
	HandlerSampledUs float64 `json:"handler_sampled_us_per_doc,omitempty"`
	// OwnUs is ferry's own work among the samples: the Ferry parts, bar the
	// copies and allocations the NATS client and the GC make (cpuprof.IsOwn).
	OwnUs float64 `json:"own_us_per_doc"`
	// Faults counts its minor page faults over the run (first touches of
	// fresh memory: a copy or a zeroing into new heap pays them).
	Faults int64 `json:"minor_faults"`
}

// part is the named part's total over every process.
func (b *CPUBreakdown) part(name string) float64 {
	i := slices.Index(b.Parts, name)
	if i < 0 {
		return 0
	}
	var s float64
	for _, p := range b.Processes {
		if i < len(p.Parts) {
			s += p.Parts[i]
		}
	}
	return s
}

// scaledCompute is the compute part of each process scaled to what
// sampling missed (see cpuprof.Hz): by the handler's thread clock over its
// samples where the process's handler was timed (a worker's compute runs
// in it), by the process's clock over its samples elsewhere.
func (b *CPUBreakdown) scaledCompute() float64 {
	i := slices.Index(b.Parts, b.Compute)
	if i < 0 {
		return 0
	}
	var s float64
	for _, p := range b.Processes {
		switch {
		case i >= len(p.Parts):
		case p.HandlerUs > 0 && p.HandlerSampledUs > 0:
			s += p.Parts[i] * p.HandlerUs / p.HandlerSampledUs
		case p.SampledUs > 0:
			s += p.Parts[i] * p.ClockUs / p.SampledUs
		}
	}
	return s
}

// agreeWithin is how far the sampled total may be from the clock's before
// the report says the split is not to be trusted part by part.
const agreeWithin = 0.10

// writeCPUBreakdown prints b under the boundary CPU line: a row per
// process, a row for all, whether the samples agree with the clocks, and
// what ferry's own work costs beyond the NATS floor (floor, us/doc).
func writeCPUBreakdown(w io.Writer, b *CPUBreakdown, floor float64) {
	if b == nil || len(b.Processes) == 0 {
		return
	}
	fmt.Fprintln(w, "  CPU per doc by process and part, us (pprof samples over the processes run; clock = getrusage; unsampled = clock - sampled):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "  process\tclock\tsampled\t%s\tunsampled\t\n", strings.Join(b.Parts, "\t"))
	all := CPUProcess{Name: "all", Parts: make([]float64, len(b.Parts))}
	row := func(p CPUProcess) {
		fmt.Fprintf(tw, "  %s\t%.2f\t%.2f\t", p.Name, p.ClockUs, p.SampledUs)
		for _, x := range p.Parts {
			fmt.Fprintf(tw, "%.2f\t", x)
		}
		fmt.Fprintf(tw, "%.2f\t\n", p.ClockUs-p.SampledUs)
	}
	for _, p := range b.Processes {
		row(p)
		all.ClockUs += p.ClockUs
		all.SampledUs += p.SampledUs
		all.Samples += p.Samples
		for i := range min(len(p.Parts), len(all.Parts)) {
			all.Parts[i] += p.Parts[i]
		}
	}
	row(all)
	tw.Flush()
	if b.Missing > 0 {
		fmt.Fprintf(w, "  %d process(es) sent no profile: the rows above are not the whole run\n", b.Missing)
	}
	verdict := "agree within 10%"
	if all.ClockUs <= 0 || math.Abs(all.SampledUs-all.ClockUs) > agreeWithin*all.ClockUs {
		verdict = "DISAGREE by more than 10% (bursty threads are undersampled): the parts are lower bounds"
	}
	fmt.Fprintf(w, "  parts sum to %.2f us/doc sampled (%d samples) vs %.2f by the clocks, %.0f%%: %s\n",
		all.SampledUs, all.Samples, all.ClockUs, 100*all.SampledUs/max(all.ClockUs, 1e-9), verdict)
	var handler, handlerSampled float64
	for _, p := range b.Processes {
		handler += p.HandlerUs
		handlerSampled += p.HandlerSampledUs
	}
	if handler > 0 {
		fmt.Fprintf(w, "  workers' batch handlers: %.2f us/doc by their threads' CPU clocks, %.2f sampled (%.0f%%)\n", handler, handlerSampled, 100*handlerSampled/handler)
		var timed, untimed float64 // processes with a timed handler, and the others
		for _, p := range b.Processes {
			if p.HandlerUs > 0 {
				timed += p.ClockUs
			} else {
				untimed += p.ClockUs
			}
		}
		fmt.Fprintf(w, "  by the clocks alone: %.2f us/doc = workers' handlers %.2f (decode, compute, encode, reply) + workers outside them %.2f (NATS client, runtime, GC) + the other processes %.2f\n",
			all.ClockUs, handler, timed-handler, untimed)
	}
	if b.Batches > 0 {
		var faults []string
		for _, p := range b.Processes {
			faults = append(faults, fmt.Sprintf("%s %.0f", p.Name, float64(p.Faults)/float64(b.Batches)))
		}
		fmt.Fprintf(w, "  minor page faults per batch (4 KiB first touches of fresh memory, in copies and zeroing): %s\n", strings.Join(faults, ", "))
	}
	var own, ownParts float64
	for _, p := range b.Ferry {
		ownParts += b.part(p)
	}
	for _, p := range b.Processes {
		own += p.OwnUs
	}
	compute, scaled := b.part(b.Compute), b.scaledCompute()
	fmt.Fprintf(w, "  ferry's own beyond the floor: %.2f us/doc = clock %.2f - compute %.2f (sampled %.2f, scaled by the handlers' thread clocks) - NATS floor %.2f\n",
		all.ClockUs-scaled-floor, all.ClockUs, scaled, compute, floor)
	fmt.Fprintf(w, "  ferry's own work sampled: %.2f us/doc (its codecs and bookkeeping, and the copies and allocations its code makes; %s together %.2f)\n",
		own, strings.Join(b.Ferry, ", "), ownParts)
}
