package report

import (
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/quantile"
)

// Repeats summarises a run whose modes ran several rounds, interleaved:
// every round runs each mode once, in the same order (A B A B ...), so
// drift of a shared machine lands on every mode alike, and a ratio taken
// within a round compares runs seconds apart.
type Repeats struct {
	Rounds int          `json:"rounds"`
	Modes  []RepeatMode `json:"modes"`
	// Ratios compares each mode with Baseline round by round: the median
	// of the per-round ratios and their range.
	Ratios []PairRatio `json:"ratios,omitempty"`
	// Confidence is the chance that [min, max] of Rounds per-round ratios
	// holds their true median, 1 - 2^(1-Rounds) (a sign-test interval,
	// which assumes nothing about the distribution).
	Confidence float64 `json:"interval_confidence"`
}

// Range is a figure over rounds: the median (the lower middle of an even
// count) and the extremes.
type Range struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// Spread is (max - min) / median: how much the figure moved across rounds.
func (r Range) Spread() float64 {
	if r.Median == 0 {
		return 0
	}
	return (r.Max - r.Min) / r.Median
}

func newRange(xs []float64) Range {
	if len(xs) == 0 {
		return Range{}
	}
	v := slices.Clone(xs)
	slices.Sort(v)
	return Range{Median: quantile.Sorted(v, 0.5), Min: v[0], Max: v[len(v)-1]}
}

// RepeatMode is one mode over the rounds.
type RepeatMode struct {
	Mode     string `json:"mode"`
	N        int    `json:"n"` // rounds it ran without error
	DocsPerS Range  `json:"docs_per_s"`
	CPUus    Range  `json:"cpu_us_per_doc"` // zero when the CPU was not measured
}

// PairRatio is Mode against Baseline, round by round.
type PairRatio struct {
	Mode     string `json:"mode"`
	Baseline string `json:"baseline"`
	N        int    `json:"n"`          // rounds where both ran
	DocsPerS Range  `json:"docs_per_s"` // mode's docs/s over the baseline's: below 1 = slower
	// CPUus is mode's CPU per document over the baseline's: above 1 = the
	// mode costs more CPU per document. Zero when either was not measured.
	CPUus Range `json:"cpu_us_per_doc"`
	// CPULeast is mode's least CPU per document over the rounds over the
	// baseline's least: the cost ratio. Noise on a shared machine only adds
	// CPU time (a busy sibling hyperthread, a cold cache, a stolen slice),
	// so each mode's least is its cost, and this ratio holds still where a
	// round's ratio moves with whichever side the noise hit. Zero when
	// either was not measured.
	CPULeast float64 `json:"cpu_least_ratio,omitempty"`
}

// NewRepeats summarises rounds, where rounds[i][j] is round i's run of
// mode j (nil when it failed or did not run). The baseline of the ratios is
// goroutines when it ran, else the first mode.
func NewRepeats(rounds [][]*coordinator.Stats) *Repeats {
	if len(rounds) == 0 {
		return nil
	}
	r := &Repeats{Rounds: len(rounds), Confidence: 1 - math.Pow(2, float64(1-len(rounds)))}
	modes := len(rounds[0])
	name := func(j int) string {
		for _, round := range rounds {
			if j < len(round) && round[j] != nil {
				return round[j].Mode
			}
		}
		return ""
	}
	ok := func(s *coordinator.Stats) bool { return s != nil && s.Docs > 0 && s.Wall > 0 }
	cpu := func(s *coordinator.Stats) float64 { return float64(s.CPU) / float64(s.Docs) / 1e3 }
	base := 0
	for j := range modes {
		if name(j) == coordinator.ModeGoroutines {
			base = j
			break
		}
	}
	leastCPU := func(j int) float64 { // mode j's least CPU per document, 0 if none
		least := 0.0
		for _, round := range rounds {
			if j < len(round) && ok(round[j]) && round[j].CPU > 0 && (least == 0 || cpu(round[j]) < least) {
				least = cpu(round[j])
			}
		}
		return least
	}
	for j := range modes {
		m := RepeatMode{Mode: name(j)}
		var thr, cpus []float64
		for _, round := range rounds {
			if j >= len(round) || !ok(round[j]) {
				continue
			}
			m.N++
			thr = append(thr, round[j].DocsPerSec())
			if round[j].CPU > 0 {
				cpus = append(cpus, cpu(round[j]))
			}
		}
		m.DocsPerS, m.CPUus = newRange(thr), newRange(cpus)
		r.Modes = append(r.Modes, m)
		if j == base {
			continue
		}
		p := PairRatio{Mode: m.Mode, Baseline: name(base)}
		var wr, cr []float64
		for _, round := range rounds {
			if j >= len(round) || base >= len(round) || !ok(round[j]) || !ok(round[base]) {
				continue
			}
			p.N++
			wr = append(wr, round[j].DocsPerSec()/round[base].DocsPerSec())
			if round[j].CPU > 0 && round[base].CPU > 0 {
				cr = append(cr, cpu(round[j])/cpu(round[base]))
			}
		}
		p.DocsPerS, p.CPUus = newRange(wr), newRange(cr)
		if b := leastCPU(base); b > 0 && m.CPUus.Min > 0 && len(cr) > 0 {
			p.CPULeast = m.CPUus.Min / b
		}
		if p.N > 0 {
			r.Ratios = append(r.Ratios, p)
		}
	}
	return r
}

// MedianRun is the index of the run with the median docs/s among runs
// (nil and failed ones skipped; the lower middle of an even count), or -1.
func MedianRun(runs []*coordinator.Stats) int {
	var idx []int
	for i, s := range runs {
		if s != nil && s.Wall > 0 {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return -1
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		x, y := runs[a].DocsPerSec(), runs[b].DocsPerSec()
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	return idx[quantile.Rank(len(idx), 0.5)]
}

// writeRepeats prints the rounds' medians and ranges, and each mode
// against the baseline; nothing for a single round.
func writeRepeats(w io.Writer, r *Repeats) {
	if r == nil || r.Rounds < 2 {
		return
	}
	fmt.Fprintf(w, "\n%d rounds, modes interleaved (each round runs every mode once, in order); the table shows each mode's median round.\n", r.Rounds)
	fmt.Fprintf(w, "median and min..max over rounds; a ratio's min..max holds its median with %.0f%% confidence:\n", 100*r.Confidence)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tdocs/s\tmin..max\tcpu_us/doc\tmin..max\tn\t")
	for _, m := range r.Modes {
		cpu, cpuRange := "-", "-"
		if m.CPUus.Median > 0 {
			cpu, cpuRange = fmt.Sprintf("%.1f", m.CPUus.Median), fmt.Sprintf("%.1f..%.1f", m.CPUus.Min, m.CPUus.Max)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f..%.0f\t%s\t%s\t%d\t\n", m.Mode, m.DocsPerS.Median, m.DocsPerS.Min, m.DocsPerS.Max, cpu, cpuRange, m.N)
	}
	tw.Flush()
	for _, p := range r.Ratios {
		line := fmt.Sprintf("%s / %s, paired by round: docs/s %s", p.Mode, p.Baseline, rangeRatio(p.DocsPerS))
		if p.CPUus.Median > 0 {
			line += ", cpu_us/doc " + rangeRatio(p.CPUus)
		}
		if p.CPULeast > 0 {
			line += fmt.Sprintf("; cost, least cpu_us/doc over least: %.2fx", p.CPULeast)
		}
		fmt.Fprintln(w, line)
	}
}

// rangeRatio prints a ratio's median, range and spread.
func rangeRatio(r Range) string {
	return fmt.Sprintf("%.2fx (%.2f..%.2f, spread %.0f%%)", r.Median, r.Min, r.Max, 100*r.Spread())
}
