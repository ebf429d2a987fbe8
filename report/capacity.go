package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/ferrylab/ferry/internal/machine"
	"github.com/ferrylab/ferry/lab/capacity"
)

// CapacitySchema versions `ferry capacity --format json`.
const CapacitySchema = "ferry.capacity/v1"

// CapacityReport is a capacity run: its configuration, the machine, what
// was measured and predicted, and the goals checked on it.
type CapacityReport struct {
	Schema   string           `json:"schema"`
	Config   map[string]any   `json:"config"`
	Manifest Manifest         `json:"manifest"`
	Capacity *capacity.Result `json:"capacity"`
	Goals    []capacity.Goal  `json:"goals"`
}

// NewCapacity wraps a capacity result with the manifest of machine m.
func NewCapacity(m machine.Info, cfg map[string]any, res *capacity.Result) *CapacityReport {
	return &CapacityReport{Schema: CapacitySchema, Config: cfg, Manifest: newManifest(m), Capacity: res, Goals: res.Goals()}
}

// WriteCapacity renders r as text or JSON.
func WriteCapacity(w io.Writer, r *CapacityReport, format string) error {
	switch format {
	case "text", "":
		return writeTables(w, r.summary(), capacityTables(r))
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return fmt.Errorf("report: capacity format %q: must be text or json", format)
}

// table is one table of a report, rendered as text or HTML alike.
type table struct {
	Title string
	Head  []string
	Rows  [][]string
	Notes []string
}

func writeTables(w io.Writer, head string, tables []table) error {
	fmt.Fprintln(w, head)
	for _, t := range tables {
		fmt.Fprintf(w, "\n%s\n", t.Title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, strings.Join(t.Head, "\t")+"\t")
		for _, row := range t.Rows {
			fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, n := range t.Notes {
			fmt.Fprintln(w, n)
		}
	}
	return nil
}

// summary is the report's first line: the job and the machine's load.
func (r *CapacityReport) summary() string {
	res := r.Capacity
	s := fmt.Sprintf("capacity: emulated compute (workload sleep) %s us/doc, batch %d", num(res.Shape.ComputeUs), res.Shape.BatchSize)
	if len(res.Brokers) > 0 {
		s += fmt.Sprintf(", %.0f bytes per document on the wire (batch + result)", res.Brokers[0].Costs.BytesPerDoc)
	}
	s += fmt.Sprintf("; %d CPUs, load average %s at start, %s at end", r.Manifest.NumCPU, orDash(res.Load[0]), orDash(res.Load[1]))
	if res.Interrupted {
		s += " (interrupted: partial)"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// num prints a figure with as many decimals as its size deserves.
func num(x float64) string {
	switch a := math.Abs(x); {
	case a >= 100 || a == 0:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(x, 'f', 1, 64)
	}
	return strconv.FormatFloat(x, 'f', 2, 64)
}

func nodes(n int) string {
	if n == 1 {
		return "1 broker"
	}
	return fmt.Sprintf("%d-node cluster", n)
}

func joinNums(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = num(x)
	}
	return strings.Join(parts, "/")
}

// capacityTables are the report's tables, in reading order.
func capacityTables(r *CapacityReport) []table {
	res := r.Capacity
	var out []table
	cal := table{Title: "calibration: no compute (the wait is nothing), every part of the fleet as busy as the machine lets it; broker nodes as processes of their own",
		Head: []string{"brokers", "batch", "workers", "docs/s", "bytes/batch", "coordinator_us", "of which serial", "broker_us", "workers_us", "cores", "compute_stage_p50_us", "transport_p50_us"}}
	fit := table{Title: "fit: CPU per batch = a + k * bytes on the wire (batch + result), least squares weighted by 1/CPU^2",
		Head: []string{"brokers", "part", "a_us", "k_ns/byte", "R2", fmt.Sprintf("at batch %d (us)", res.Shape.BatchSize)}}
	val := table{Title: "validation: emulated fleets on this machine against the model's prediction for it",
		Head: []string{"brokers", "series", "compute_us/doc", "workers", "cores_before", "predicted", "measured", "min..max", "error", "efficiency", "busy", "cores", "cpu_us/batch c/b/w", "predicted limit"}}
	for _, b := range res.Brokers {
		c := b.Costs
		for _, run := range b.Calibration {
			cal.Rows = append(cal.Rows, []string{nodes(b.Nodes), strconv.Itoa(run.BatchSize), strconv.Itoa(run.Workers), num(run.DocsPerS), num(run.Bytes),
				num(run.CoordinatorUs), num(run.SerialUs), joinNums(run.BrokerUs), num(run.WorkersUs), num(run.Cores), num(run.ComputeStageP50Us), num(run.TransportP50Us)})
		}
		bytes := c.Bytes(res.Shape.BatchSize)
		parts := []struct {
			name string
			l    capacity.Line
		}{{"coordinator", c.Coordinator}, {"coordinator's serial path", c.Serial}}
		for i, l := range c.Brokers {
			name := "broker"
			if len(c.Brokers) > 1 {
				name = fmt.Sprintf("broker node %d", i+1)
			}
			parts = append(parts, struct {
				name string
				l    capacity.Line
			}{name, l})
		}
		parts = append(parts, struct {
			name string
			l    capacity.Line
		}{"workers (beside compute)", c.Workers})
		for _, p := range parts {
			fit.Rows = append(fit.Rows, []string{nodes(b.Nodes), p.name, num(p.l.AUs), strconv.FormatFloat(p.l.KNsB, 'f', 3, 64), strconv.FormatFloat(p.l.R2, 'f', 3, 64), num(p.l.At(bytes))})
		}
		fit.Notes = append(fit.Notes, fmt.Sprintf("%s: %.2f cores at saturation (what this machine gave the run); the coordinator's serial path is %.0f%% of its CPU samples; an idle attached worker %.4f cores; the emulated wait overshoots by %s us per batch (median) and costs the workers %s us of CPU per batch; round-trip latency %s us (median) at one batch in flight",
			nodes(b.Nodes), c.Cores, 100*c.SerialShare, c.IdleWorkerCores, num(c.OvershootUs), num(c.WaitCPUUs), num(c.LatencyUs)))
		for _, s := range b.Series {
			for _, p := range s.Points {
				eff, errS, spread := "-", "-", "-"
				if p.Efficiency > 0 {
					eff = strconv.FormatFloat(p.Efficiency, 'f', 2, 64)
				}
				if p.DocsPerS > 0 {
					errS = fmt.Sprintf("%+.0f%%", 100*p.Error)
				}
				if lo, hi := docsRange(p.Runs); hi > 0 {
					spread = num(lo) + ".." + num(hi)
				}
				val.Rows = append(val.Rows, []string{nodes(b.Nodes), s.Name, num(s.Prediction.Shape.ComputeUs), strconv.Itoa(p.Workers), num(p.CoresBefore), num(p.Predicted), num(p.DocsPerS),
					spread, errS, eff, fmt.Sprintf("%.0f%%", 100*p.Busy), num(p.Cores), cpuPerBatch(p.Runs), shortLimit(p.Limit)})
			}
			measured := "not reached (the most workers are within 10% of linear)"
			if s.MeasuredKnee > 0 {
				measured = fmt.Sprintf("%.1f (predicted/measured %+.0f%%)", s.MeasuredKnee, 100*(s.KneeNow/s.MeasuredKnee-1))
			}
			val.Notes = append(val.Notes, fmt.Sprintf("%s, %s series: predicted knee %s workers at calibration, %s with the cores before the last point (%s); measured %s",
				nodes(b.Nodes), s.Name, kneeText(s.Prediction.Knee), kneeText(s.KneeNow), s.Prediction.Bottleneck, measured))
		}
	}
	val.Notes = append(val.Notes, "cores_before: the cores the machine gave the fleet just before the point (a short run with no compute; at fewer workers than saturate it, the calibration's), which the prediction uses; efficiency: docs/s over workers x one worker's docs/s; busy: the workers' mean busy share of wall time; cores: CPU of the whole fleet per second; cpu_us/batch: coordinator/broker node(s)/workers; measured knee: docs/s at the most workers over one worker's, when past the knee")
	out = append(out, cal, fit, val)
	if len(res.Layouts) > 0 {
		lay := table{Title: fmt.Sprintf("predicted for the job (compute %s us/doc, batch %d) on other layouts: workers remote, a core each", num(res.Shape.ComputeUs), res.Shape.BatchSize),
			Head: []string{"layout", "worker docs/s", "saturation docs/s", "knee (workers)", "bottleneck"}}
		for _, w := range layoutWorkers(res) {
			lay.Head = append(lay.Head, fmt.Sprintf("w=%d", w))
		}
		for _, p := range res.Layouts {
			sat := math.Inf(1)
			for _, rs := range p.Resources {
				sat = math.Min(sat, rs.DocsPerS(p.Shape.BatchSize, 0))
			}
			row := []string{p.Layout.Name, num(p.WorkerDocsPerS), num(sat), kneeText(p.Knee), p.Bottleneck}
			for _, pt := range p.Points {
				row = append(row, num(pt.DocsPerS))
			}
			lay.Rows = append(lay.Rows, row)
		}
		lay.Notes = []string{"layout: coordinator=C,broker=B cores on machines of their own (nodes=3: each of three nodes; the coordinator's node carries all its traffic); shared=S one pool for both"}
		out = append(out, lay)
	}
	if m := res.Memory; m.Workers > 0 {
		out = append(out, table{Title: fmt.Sprintf("resident memory at %d emulated workers, from /proc/<pid>/status (MB = 10^6 bytes)", m.Workers),
			Head: []string{"coordinator", "broker", "workers", "total", "sum of peaks"},
			Rows: [][]string{{num(m.CoordinatorMB), num(m.BrokersMB), num(m.WorkersMB), num(m.TotalMB), num(m.PeakMB)}}})
	}
	g := table{Title: "goals (this run, this machine)", Head: []string{"goal", "target", "measured", "met"}, Notes: res.Notes}
	for _, x := range r.Goals {
		g.Rows = append(g.Rows, []string{x.Name, x.Target, orDash(x.Measured), x.Met})
	}
	return append(out, g)
}

// docsRange is the least and most docs/s of runs without error.
func docsRange(runs []capacity.Sample) (lo, hi float64) {
	for _, r := range runs {
		if r.Error != "" {
			continue
		}
		if lo == 0 || r.DocsPerS < lo {
			lo = r.DocsPerS
		}
		hi = max(hi, r.DocsPerS)
	}
	return lo, hi
}

// cpuPerBatch is the median run's CPU per batch: coordinator/brokers/workers.
func cpuPerBatch(runs []capacity.Sample) string {
	if len(runs) == 0 {
		return "-"
	}
	r := runs[len(runs)/2]
	return num(r.CoordinatorUs) + "/" + joinNums(r.BrokerUs) + "/" + num(r.WorkersUs)
}

// layoutWorkers is the worker counts the layouts were predicted at.
func layoutWorkers(res *capacity.Result) []int {
	if len(res.Layouts) == 0 {
		return nil
	}
	var ws []int
	for _, p := range res.Layouts[0].Points {
		ws = append(ws, p.Workers)
	}
	return ws
}

func kneeText(k float64) string {
	if math.IsInf(k, 1) {
		return "none"
	}
	return num(k)
}

// shortLimit is a resource's name without its parenthesised detail.
func shortLimit(s string) string {
	if i := strings.Index(s, " ("); i > 0 {
		return s[:i]
	}
	return s
}

// WriteCapacityHTML renders r as one self-contained HTML page, like the
// sweep's: inline SVG charts and CSS, no script.
func WriteCapacityHTML(w io.Writer, r *CapacityReport) error {
	pg := page{Title: "ferry capacity", Sub: r.summary(), Tables: capacityTables(r), Manifest: manifestRows(r.Manifest)}
	for _, b := range r.Capacity.Brokers {
		pg.Charts = append(pg.Charts, validationChart(b))
	}
	if len(r.Capacity.Layouts) > 0 {
		pg.Charts = append(pg.Charts, layoutChart(r.Capacity.Layouts))
	}
	pg.Config = configRows(r.Config)
	return pageTmpl.Execute(w, pg)
}

var seriesColors = map[string]string{"job": "#1f77b4", "knee": "#d62728"}

// logAxis is a log10 axis on the chart's y.
func (c *chart) logYAxis(lo, hi float64) axis {
	return axis{lo: lo, hi: hi, log: true, px0: c.Top + c.PH, px1: c.Top}
}

// decadeTicks are 1, 2, 5 x powers of ten within [lo, hi].
func decadeTicks(lo, hi float64) []float64 {
	var out []float64
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			if v := m * math.Pow(10, e); v >= lo && v <= hi {
				out = append(out, v)
			}
		}
	}
	return out
}

// workersChart is a docs/s against workers chart, both axes log scale,
// over the values ys will hold.
func workersChart(title string, ws []float64, ys []float64) (chart, axis, axis) {
	c := newChart(title, "workers (log scale)", "documents per second (log scale)")
	lo, hi := slices.Min(ys), slices.Max(ys)
	lo, hi = math.Pow(10, math.Floor(math.Log10(math.Max(lo, 1)))), math.Pow(10, math.Ceil(math.Log10(math.Max(hi, 10))))
	x := c.xAxis(ws[0], math.Max(ws[len(ws)-1], 2*ws[0]), true)
	y := c.logYAxis(lo, hi)
	for _, w := range ws {
		c.XTicks = append(c.XTicks, tick{Pos: x.at(w), Label: fmtNum(w)})
	}
	for _, v := range decadeTicks(lo, hi) {
		c.YTicks = append(c.YTicks, tick{Pos: y.at(v), Label: fmtNum(v)})
	}
	return c, x, y
}

// validationChart: each series' predicted docs/s (dashed) and measured
// (dots) against workers, with the predicted knees marked.
func validationChart(b capacity.Brokers) chart {
	var ws, ys []float64
	for _, s := range b.Series {
		for _, p := range s.Points {
			if !slices.Contains(ws, float64(p.Workers)) {
				ws = append(ws, float64(p.Workers))
			}
			ys = append(ys, p.DocsPerS, p.Predicted)
		}
	}
	if len(ws) == 0 {
		return newChart("Validation: "+nodes(b.Nodes), "workers", "documents per second")
	}
	slices.Sort(ws)
	c, x, y := workersChart("Validation: "+nodes(b.Nodes)+", emulated workers on this machine", ws, ys)
	c.Caption = fmt.Sprintf("%s: predicted (dashed, on the cores measured before each point) and measured (dots) docs/s; vertical bars mark each series' predicted knee", nodes(b.Nodes))
	for _, s := range b.Series {
		col := seriesColors[s.Name]
		if s.Coordinators > 1 {
			col = "#2ca02c"
		}
		var px, py, mx, my []float64
		meas := line{Name: s.Name + " measured", Color: col}
		for _, p := range s.Points {
			px, py = append(px, float64(p.Workers)), append(py, p.Predicted)
			if p.DocsPerS > 0 {
				mx, my = append(mx, float64(p.Workers)), append(my, p.DocsPerS)
				meas.Dots = append(meas.Dots, dot{X: x.at(float64(p.Workers)), Y: y.at(p.DocsPerS),
					Title: fmt.Sprintf("%s, %d workers: %.0f docs/s measured, %.0f predicted (medians)", s.Name, p.Workers, p.DocsPerS, p.Predicted)})
			}
			if lo, hi := docsRange(p.Runs); hi > lo {
				c.Bars = append(c.Bars, bar{X: x.at(float64(p.Workers)) - 0.5, W: 1, Y: y.at(hi), H: y.at(lo) - y.at(hi), Color: col})
			}
		}
		meas.Points = polyline(x, y, mx, my)
		c.Lines = append(c.Lines, line{Name: s.Name + " predicted", Color: col, Points: polyline(x, y, px, py), Dash: true}, meas)
		c.Legend = append(c.Legend, legendItem{Name: fmt.Sprintf("%s (%s us/doc)", s.Name, num(s.Prediction.Shape.ComputeUs)), Color: col})
		if k := s.KneeNow; k >= x.lo && k <= x.hi {
			c.Bars = append(c.Bars, bar{X: x.at(k) - 1, W: 2, Y: c.Top, H: c.PH, Color: col, Title: fmt.Sprintf("%s: predicted knee %.1f workers (%s)", s.Name, k, s.Prediction.Bottleneck)})
		}
	}
	c.Legend = append(c.Legend, legendItem{Name: "predicted", Color: "#444444", Dash: true})
	return c
}

// layoutChart: the job's predicted docs/s against workers on each layout,
// out to past the furthest knee, with the knees marked.
func layoutChart(ps []capacity.Prediction) chart {
	far := 64.0
	for _, p := range ps {
		if !math.IsInf(p.Knee, 1) {
			far = math.Max(far, 4*p.Knee)
		}
	}
	var ws []float64
	for w := 1.0; w <= far; w *= 2 {
		ws = append(ws, w)
	}
	var curves [][]float64
	var ys []float64
	for _, p := range ps {
		var curve []float64
		for _, w := range ws {
			v := float64(w) * p.WorkerDocsPerS
			for _, r := range p.Resources {
				v = math.Min(v, r.DocsPerS(p.Shape.BatchSize, int(w)))
			}
			curve = append(curve, v)
		}
		curves = append(curves, curve)
		ys = append(ys, curve...)
	}
	c, x, y := workersChart("Predicted throughput by layout", ws, ys)
	c.Caption = "the job on each layout, workers remote; bars mark the knees, where the named bottleneck saturates"
	palette := []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"}
	for i, p := range ps {
		col := palette[i%len(palette)]
		c.Lines = append(c.Lines, line{Name: p.Layout.Name, Color: col, Points: polyline(x, y, ws, curves[i])})
		c.Legend = append(c.Legend, legendItem{Name: fmt.Sprintf("%s: knee %s (%s)", p.Layout.Name, kneeText(p.Knee), shortLimit(p.Bottleneck)), Color: col})
		if k := p.Knee; k >= x.lo && k <= x.hi {
			c.Bars = append(c.Bars, bar{X: x.at(k) - 1, W: 2, Y: c.Top, H: c.PH, Color: col, Title: fmt.Sprintf("%s: knee %.0f workers (%s)", p.Layout.Name, k, p.Bottleneck)})
		}
	}
	return c
}
