package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/ferrylab/ferry/coordinator"
)

// WriteText prints the comparison table (the narrow one, or every column
// with r.Wide), the per-batch stage split for the modes that measured it,
// and the verdict on identical results.
func WriteText(w io.Writer, r *Report) error {
	if err := writeModes(w, r); err != nil {
		return err
	}
	writeRepeats(w, r.Repeats)
	var tw *tabwriter.Writer // the split table's
	split := false
	for _, m := range r.Modes {
		if _, ok := m.Stages[coordinator.StageWorkerDecode.String()]; ok {
			split = true
		}
	}
	if split {
		fmt.Fprintln(w, "\nper-batch time split, p50 / p99 in microseconds:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, "mode\t")
		stages := splitStages(r.Modes)
		for _, st := range stages {
			fmt.Fprintf(tw, "%s\t", st)
		}
		fmt.Fprintln(tw, "overhead\t")
		for _, m := range r.Modes {
			if _, ok := m.Stages[coordinator.StageWorkerDecode.String()]; !ok {
				continue
			}
			fmt.Fprintf(tw, "%s\t", m.Mode)
			var total, compute float64
			for _, st := range stages {
				s, ok := m.Stages[st.String()]
				if !ok {
					fmt.Fprint(tw, "-\t")
					continue
				}
				fmt.Fprintf(tw, "%.0f / %.0f\t", s.P50us, s.P99us)
				if st == coordinator.StageQueue {
					continue // waiting behind a pipelined batch costs no throughput: not overhead
				}
				total += s.MeanUs
				if st == coordinator.StageCompute {
					compute = s.MeanUs
				}
			}
			if total > 0 {
				fmt.Fprintf(tw, "%.0f%%\t\n", 100*(total-compute)/total)
			} else {
				fmt.Fprintln(tw, "-\t")
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, m := range r.Modes {
		if len(m.BatchSizes) > 0 {
			fixed := "the stage times' fixed part"
			if m.BatchCPUus > 0 {
				fixed = fmt.Sprintf("the hop's CPU, %.0f us per batch (a raw NATS echo of 64 B)", m.BatchCPUus)
			}
			fmt.Fprintf(w, "\n%s: batch auto chose %s; sized on %s; overhead %.1f%%\n", m.Mode, sizeTrace(m.BatchSizes), fixed, 100*m.Overhead)
		}
	}
	for _, m := range r.Modes {
		if line := planesLine(m); line != "" {
			fmt.Fprintf(w, "\n%s: %s\n", m.Mode, line)
		}
	}
	if line := boundarySplit(r); line != "" {
		fmt.Fprintf(w, "%s\n", line)
	}
	for _, m := range r.Modes {
		if m.Forged > 0 { // someone is answering batches they were not sent
			fmt.Fprintf(w, "\n%s: %d forged results discarded (they answered no batch in flight or lacked its token)\n", m.Mode, m.Forged)
		}
	}
	for _, m := range r.Modes {
		if m.Error != "" {
			fmt.Fprintf(w, "\n%s: %s\n", modeName(m), m.Error)
		}
	}
	writeFloor(w, r.Floor)
	writeBoundaryCPU(w, r)
	if r.Emulated {
		fmt.Fprintln(w, "\nemulated compute: workers wait instead of computing; cpu_us/doc is the coordinator, broker and transport only")
	}
	_, err := fmt.Fprintf(w, "\n%s\n", r.Verdict())
	return err
}

// sizeTrace prints the sizes chosen as "16 (doc 0) -> 64 (doc 32) ...",
// eliding the middle of a long trace.
func sizeTrace(steps []coordinator.SizeStep) string {
	var parts []string
	for i, s := range steps {
		if len(steps) > 12 && i == 6 {
			parts = append(parts, fmt.Sprintf("... %d more", len(steps)-12))
		}
		if len(steps) > 12 && i >= 6 && i < len(steps)-6 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%d (doc %d)", s.Size, s.First))
	}
	return strings.Join(parts, " -> ")
}

func modeName(m Mode) string {
	if m.Mode == "" {
		return "mode"
	}
	return m.Mode
}

func ratio(x float64) string {
	if x == 0 {
		return "-"
	}
	return strconv.FormatFloat(x, 'f', 2, 64) + "x"
}

// WriteCSV writes one row per mode with every figure of the JSON Mode,
// stage times flattened to <stage>_p50_us and <stage>_p99_us.
func WriteCSV(w io.Writer, r *Report) error {
	cw := csv.NewWriter(w)
	head := []string{"mode", "workers", "wall_s", "docs", "docs_per_s", "text_mb_per_s", "speedup", "efficiency",
		"batches", "bytes_out", "bytes_in", "busy_mean", "busy_min", "retries", "requeues", "splits", "duplicates_discarded", "forged_discarded", "failed_docs", "digest", "cpu_us_per_doc"}
	for st := range coordinator.NumStages {
		head = append(head, st.String()+"_p50_us", st.String()+"_p99_us")
	}
	if err := cw.Write(append(head, "identical_results")); err != nil {
		return err
	}
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
	i := func(x int64) string { return strconv.FormatInt(x, 10) }
	for _, m := range r.Modes {
		row := []string{m.Mode, i(int64(m.Workers)), f(m.WallS), i(m.Docs), f(m.DocsPerS), f(m.MBPerS), f(m.Speedup), f(m.Efficiency),
			i(m.Batches), i(m.BytesOut), i(m.BytesIn), f(m.BusyMean), f(m.BusyMin), i(m.Retries), i(m.Requeues), i(m.Splits), i(m.Duplicates), i(m.Forged), i(int64(m.Failed)), m.Digest, f(m.CPUus)}
		for st := range coordinator.NumStages {
			s, ok := m.Stages[st.String()]
			if !ok {
				row = append(row, "", "")
				continue
			}
			row = append(row, f(s.P50us), f(s.P99us))
		}
		if err := cw.Write(append(row, strconv.FormatBool(r.IdenticalResults))); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// Verdict is the report's last line: whether every mode produced the same
// results, or why they cannot be compared.
func (r *Report) Verdict() string {
	switch {
	case len(r.NotCompared) > 0:
		return "identical results across modes: n/a (failed: " + strings.Join(r.NotCompared, ", ") + ")"
	case !r.IdenticalResults:
		return "identical results across modes: NO (digests differ)"
	}
	return "identical results across modes: yes"
}

// splitStages are the stages the split table shows, in a batch's order:
// every one, but the exec pipe and the worker's queue only when some mode
// measured them (the queue right after transport, where it used to be).
func splitStages(modes []Mode) []coordinator.Stage {
	measured := func(st coordinator.Stage) bool {
		return slices.ContainsFunc(modes, func(m Mode) bool { _, ok := m.Stages[st.String()]; return ok })
	}
	var out []coordinator.Stage
	for st := range coordinator.NumStages {
		switch {
		case (st == coordinator.StagePipe || st == coordinator.StageQueue) && !measured(st):
		case st == coordinator.StageQueue: // placed after transport
		default:
			out = append(out, st)
			if st == coordinator.StageTransport && measured(coordinator.StageQueue) {
				out = append(out, coordinator.StageQueue)
			}
		}
	}
	return out
}
