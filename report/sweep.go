package report

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/ferrylab/ferry/internal/machine"
	"github.com/ferrylab/ferry/lab/sweep"
)

// SweepSchema versions the sweep JSON; bump it on any incompatible change.
const SweepSchema = "ferry.sweep/v1"

// SweepReport is a sweep: its configuration, the machine, every run and
// what was derived from them.
type SweepReport struct {
	Schema   string         `json:"schema"`
	Config   map[string]any `json:"config"`
	Manifest Manifest       `json:"manifest"`
	Sweep    *sweep.Result  `json:"sweep"`
}

// NewSweep wraps a sweep's result with the manifest of machine m, where it ran.
func NewSweep(m machine.Info, cfg map[string]any, res *sweep.Result) *SweepReport {
	return &SweepReport{Schema: SweepSchema, Config: cfg, Manifest: newManifest(m), Sweep: res}
}

// WriteSweep renders r as text or JSON.
func WriteSweep(w io.Writer, r *SweepReport, format string) error {
	switch format {
	case "text", "":
		return WriteSweepText(w, r)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return fmt.Errorf("report: sweep format %q: must be text or json", format)
}

// WriteSweepText prints one table per series (workload setting, codec and
// workers), then the fits, the break-even and the auto-batch comparison.
func WriteSweepText(w io.Writer, r *SweepReport) error {
	res := r.Sweep
	state := ""
	if res.Interrupted {
		state = " (interrupted: partial)"
	}
	fmt.Fprintf(w, "sweep: %d runs of %d points, %d repeats, seed %d%s\n", len(res.Records), len(res.Points), res.Repeats, res.Seed, state)
	series := ""
	var tw *tabwriter.Writer
	flush := func() {
		if tw != nil {
			tw.Flush()
		}
	}
	for _, s := range res.Points {
		if s.Series() != series {
			flush()
			series = s.Series()
			fmt.Fprintf(w, "\n%s\n", series)
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "mode\tbatch\tdocs\tdocs/s\t±IQR\tmin..max\tcpu_us/doc\tbatch_us\toverhead\tmean_batch\tn\t")
		}
		iqr := 0.0
		if s.DocsPerS.Median > 0 {
			iqr = 100 * (s.DocsPerS.Q3 - s.DocsPerS.Q1) / 2 / s.DocsPerS.Median
		}
		n := fmt.Sprint(s.N)
		if s.Errors > 0 {
			n += fmt.Sprintf(" (%d failed)", s.Errors)
		}
		cpu := "-"
		if s.CPUus.Median > 0 {
			cpu = fmt.Sprintf("%.2f", s.CPUus.Median)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.0f%%\t%.0f..%.0f\t%s\t%.0f\t%.1f%%\t%.1f\t%s\t\n", s.Mode, s.Batch(), s.Docs,
			s.DocsPerS.Median, iqr, s.DocsPerS.Min, s.DocsPerS.Max, cpu, s.BatchUs.Median, 100*s.Overhead, s.MeanBatch, n)
	}
	flush()
	if len(res.Fits) > 0 {
		fmt.Fprintln(w, "\nfit per mode: t(b) = a + c*b, one worker's wall time per batch of b documents (least squares weighted by 1/t^2)")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "series\tmode\ta_us\tc_us\tR2\tsizes\t")
		for _, f := range res.Fits {
			fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.2f\t%.4f\t%d\t\n", f.Series, f.Mode, f.AUs, f.CUs, f.R2, f.N)
		}
		tw.Flush()
	}
	if len(res.BreakEvens) > 0 {
		fmt.Fprintf(w, "\nbreak-even: the batch size where processes reach %.0f%% of goroutines' throughput\n", 100*res.Level)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "series\tpredicted\t90%% interval\tobserved\t90%% interval\tpredicted/observed\trecommended (%.0f%% overhead)\t\n", 100*res.Target)
		for _, b := range res.BreakEvens {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", b.Series, predicted(b), interval(b.PredictedCI), observed(b), interval(b.ObservedCI), agreement(b), recommended(b))
		}
		tw.Flush()
		writeCPUBreakEvens(w, r)
		if res.Repeats >= 2 {
			fmt.Fprintln(w, "intervals: 5th to 95th percentile over 200 resamples of whole repeats; an open end (inf) means some resamples never cross")
		}
	}
	if len(res.Autos) > 0 {
		fmt.Fprintln(w, "\nbatch auto against the best fixed batch size of the same series and mode")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "group\tauto docs/s\tmean batch\toverhead\tbest fixed\tbest docs/s\tauto/best\t90% interval\tleast-CPU fixed\tcpu auto/best\t90% interval\t")
		for _, a := range res.Autos {
			cpu, cpuBest := "-", "-"
			if a.CPURatio > 0 {
				cpu, cpuBest = fmt.Sprintf("%.2fx", a.CPURatio), fmt.Sprint(a.BestCPUBatch)
			}
			fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%.1f%%\t%d\t%.0f\t%.2fx\t%s\t%s\t%s\t%s\t\n", a.Group, a.DocsPerS, a.MeanBatch, 100*a.Overhead, a.BestBatch, a.BestDocsS, a.Ratio, ratioInterval(a.RatioCI), cpuBest, cpu, ratioInterval(a.CPURatioCI))
		}
		tw.Flush()
		fmt.Fprintln(w, "auto/best: docs/s ratio, paired within each repeat (above 1 = auto faster); cpu auto/best: CPU per document against the fixed size with the least (above 1 = auto costs more)")
	}
	return nil
}

func predicted(b sweep.BreakEven) string {
	if b.Never {
		return "never"
	}
	return fmt.Sprintf("%.1f", b.Predicted)
}

func observed(b sweep.BreakEven) string {
	if b.Observed == 0 {
		return "not reached"
	}
	return fmt.Sprintf("%.1f", b.Observed)
}

// interval prints a bootstrap interval; -1 is an open end.
func interval(ci [2]float64) string {
	if ci == [2]float64{} {
		return "-"
	}
	end := func(x float64) string {
		if x < 0 {
			return "inf"
		}
		return fmt.Sprintf("%.0f", x)
	}
	return end(ci[0]) + ".." + end(ci[1])
}

// ratioInterval prints an auto/best interval, "-" when there is none.
func ratioInterval(ci [2]float64) string {
	if ci == [2]float64{} {
		return "-"
	}
	return fmt.Sprintf("%.2f..%.2f", ci[0], ci[1])
}

func agreement(b sweep.BreakEven) string {
	if b.Never || b.Observed == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f (%+.0f%%)", b.Predicted/b.Observed, 100*(b.Predicted/b.Observed-1))
}

func recommended(b sweep.BreakEven) string {
	if b.Recommended == 0 {
		return "none reaches it"
	}
	return fmt.Sprintf("%d (%.1f%%)", b.Recommended, 100*b.RecommendedOverhead)
}

// Recommendation is the one line ferry recommend prints for b: from the
// CPU break-even when CPU was measured (cpuRecommendation), else from
// throughput.
func Recommendation(b sweep.BreakEven, target float64) string {
	if b.CPU != nil {
		return cpuRecommendation(b, target)
	}
	p := b.Processes
	if b.Recommended == 0 {
		if len(b.Ratios) == 0 {
			return fmt.Sprintf("batch_size=? (no batch size measured for %s)", b.Series)
		}
		r := b.Ratios[0]
		for _, x := range b.Ratios {
			if x.Observed > r.Observed {
				r = x
			}
		}
		return fmt.Sprintf("batch_size=%d (processes never reach %.0f%% overhead: per-document cost %.2fus vs goroutines %.2fus; best measured %.1f%% overhead at %d; %s)",
			r.Batch, 100*target, p.CUs, b.Goroutines.CUs, 100*(1-r.Observed), r.Batch, b.Series)
	}
	obs := "not reached in the sweep"
	if b.Observed > 0 {
		obs = fmt.Sprintf("observed %.1f", b.Observed)
	}
	pred := predicted(b)
	if b.PredictedCI != [2]float64{} {
		pred += " (90% interval " + interval(b.PredictedCI) + ")"
	}
	return fmt.Sprintf("batch_size=%d (processes overhead %.1f%% vs goroutines, target %.0f%%; break-even at %.0f%%: predicted %s, %s; fit processes a=%.0fus c=%.2fus R2=%.3f, goroutines a=%.1fus c=%.2fus R2=%.3f; %s)",
		b.Recommended, 100*b.RecommendedOverhead, 100*target, 100*sweep.BreakEvenLevel, pred, obs,
		p.AUs, p.CUs, p.R2, b.Goroutines.AUs, b.Goroutines.CUs, b.Goroutines.R2, b.Series)
}

// writeCPUBreakEvens prints the break-evens from CPU per document, which
// drive ferry recommend, and says where they disagree with throughput's.
func writeCPUBreakEvens(w io.Writer, r *SweepReport) {
	res := r.Sweep
	var rows []sweep.BreakEven
	for _, b := range res.BreakEvens {
		if b.CPU != nil {
			rows = append(rows, b)
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nbreak-even from CPU per document: the batch size where goroutines' CPU per document reaches %.0f%% of processes' (ferry recommend uses this one)\n", 100*res.Level)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "series\tpredicted\t90%% interval\tobserved\t90%% interval\tthroughput's\tamortized\t90%% interval\trecommended (CPU overhead)\t\n")
	for _, b := range rows {
		c := b.CPU
		cb := sweep.BreakEven{Predicted: c.Predicted, Never: c.Never, Observed: c.Observed, Recommended: c.Recommended, RecommendedOverhead: c.RecommendedOverhead}
		am := "-"
		if c.Amortized > 0 {
			am = fmt.Sprintf("%.1f", c.Amortized)
		}
		rec := recommended(cb)
		if c.FromAmortized {
			rec += " amortized"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", b.Series, predicted(cb), interval(c.PredictedCI), observed(cb), interval(c.ObservedCI), predicted(b), am, interval(c.AmortizedCI), rec)
	}
	tw.Flush()
	fmt.Fprintf(w, "amortized: the batch size where processes' fixed CPU per batch is %.0f%% of their CPU per batch (--batch auto's rule on CPU); recommended is it where the break-even is never reached\n", 100*res.Target)
	for _, b := range rows {
		if b.Disagree {
			fmt.Fprintf(w, "%s: the throughput and CPU break-evens disagree beyond their intervals (predicted %s vs %s): %s\n",
				b.Series, predicted(b), predicted(sweep.BreakEven{Predicted: b.CPU.Predicted, Never: b.CPU.Never}), disagreeWhy(b, r.Manifest))
		}
	}
}

// disagreeWhy is the likely reason the throughput and CPU break-evens of b
// differ on the machine of m.
func disagreeWhy(b sweep.BreakEven, m Manifest) string {
	cores := m.GOMAXPROCS
	if cores == 0 {
		cores = m.NumCPU
	}
	if b.Workers < cores {
		return fmt.Sprintf("%d workers on %d cores: the idle cores ran the broker's and the coordinator's work, so wall throughput hid CPU the boundary costs", b.Workers, cores)
	}
	return fmt.Sprintf("%d workers on %d cores, no idle core: wall throughput moved with other load on the machine as well (see each point's min..max), CPU per document much less", b.Workers, cores)
}

// cpuRecommendation is the recommendation from CPU per document, with the
// throughput break-even beside it.
func cpuRecommendation(b sweep.BreakEven, target float64) string {
	c := b.CPU
	thr := predicted(b)
	if b.PredictedCI != [2]float64{} {
		thr += " (90% interval " + interval(b.PredictedCI) + ")"
	}
	if c.Recommended == 0 {
		return fmt.Sprintf("batch_size=? (processes never come within %.0f%% of goroutines' CPU per document: per-document CPU %.2fus vs goroutines %.2fus; throughput break-even %s; %s)",
			100*target, c.Processes.CUs, c.Goroutines.CUs, thr, b.Series)
	}
	if c.FromAmortized {
		am := fmt.Sprintf("%.1f", c.Amortized)
		if c.AmortizedCI != [2]float64{} {
			am += " (90% interval " + interval(c.AmortizedCI) + ")"
		}
		return fmt.Sprintf("batch_size=%d (amortizes processes' fixed CPU per batch, a=%.0fus, to %.0f%%: %s; no batch size brings processes within %.0f%% of goroutines' CPU per document, they cost %.2fus per document more at any size (c=%.2fus vs %.2fus); throughput break-even %s; %s)",
			c.Recommended, c.Processes.AUs, 100*target, am, 100*target, c.Processes.CUs-c.Goroutines.CUs, c.Processes.CUs, c.Goroutines.CUs, thr, b.Series)
	}
	pred := predicted(sweep.BreakEven{Predicted: c.Predicted, Never: c.Never})
	if c.PredictedCI != [2]float64{} {
		pred += " (90% interval " + interval(c.PredictedCI) + ")"
	}
	obs := "not reached in the sweep"
	if c.Observed > 0 {
		obs = fmt.Sprintf("observed %.1f", c.Observed)
	}
	agree := "agrees"
	if b.Disagree {
		agree = "disagrees"
	}
	return fmt.Sprintf("batch_size=%d (processes CPU overhead %.1f%% vs goroutines, target %.0f%%; CPU break-even at %.0f%%: predicted %s, %s; throughput break-even %s %s; CPU fit processes a=%.0fus c=%.2fus, goroutines a=%.1fus c=%.2fus; %s)",
		c.Recommended, 100*c.RecommendedOverhead, 100*target, 100*sweep.BreakEvenLevel, pred, obs, thr, agree,
		c.Processes.AUs, c.Processes.CUs, c.Goroutines.AUs, c.Goroutines.CUs, b.Series)
}
