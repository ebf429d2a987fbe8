package report

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
)

// writeModes prints the table of modes: by default the narrow one, eight
// columns that fit a terminal (what a first reader needs to compare the
// modes); with r.Wide every column (wall time, text MB/s, efficiency,
// batches, bytes each way, requeues). JSON and CSV always carry every figure.
func writeModes(w io.Writer, r *Report) error {
	flops := slices.ContainsFunc(r.Modes, func(m Mode) bool { return m.GFLOPs > 0 })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if r.Wide {
		fmt.Fprint(tw, "mode\tworkers\twall_s\tdocs/s\ttext_MB/s\tspeedup\tefficiency\tcpu_us/doc\tbatches\tMB_out\tMB_in\tbusy\tretries\trequeued\tfailed\t")
	} else {
		fmt.Fprint(tw, "mode\tworkers\tdocs/s\tspeedup\tcpu_us/doc\tbusy\tretries\tfailed\t")
	}
	if flops {
		fmt.Fprint(tw, "GFLOP/s\tper_core\t")
	}
	fmt.Fprintln(tw)
	for _, m := range r.Modes {
		if m.Mode == "" {
			continue
		}
		cpu := "-"
		if m.CPUus > 0 {
			cpu = strconv.FormatFloat(m.CPUus, 'f', 1, 64)
		}
		if r.Wide {
			fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.0f\t%.2f\t%s\t%s\t%s\t%d\t%.2f\t%.2f\t%.0f%%\t%d\t%d\t%d\t",
				m.Mode, m.Workers, m.WallS, m.DocsPerS, m.MBPerS, ratio(m.Speedup), ratio(m.Efficiency), cpu,
				m.Batches, float64(m.BytesOut)/1e6, float64(m.BytesIn)/1e6, 100*m.BusyMean, m.Retries, m.Requeues, m.Failed)
		} else {
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%.0f%%\t%d\t%d\t",
				m.Mode, m.Workers, m.DocsPerS, ratio(m.Speedup), cpu, 100*m.BusyMean, m.Retries, m.Failed)
		}
		if flops {
			fmt.Fprintf(tw, "%.2f\t%.2f\t", m.GFLOPs, m.GFLOPs/float64(max(m.Workers, 1)))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
