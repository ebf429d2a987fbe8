package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/lab/sweep"
)

//go:embed html.tmpl
var htmlTemplate string

var pageTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct":       func(x float64) string { return fmt.Sprintf("%.1f%%", 100*x) },
	"f1":        func(x float64) string { return fmt.Sprintf("%.1f", x) },
	"f2":        func(x float64) string { return fmt.Sprintf("%.2f", x) },
	"f4":        func(x float64) string { return fmt.Sprintf("%.4f", x) },
	"f0":        func(x float64) string { return fmt.Sprintf("%.0f", x) },
	"addf":      func(a, b float64) float64 { return a + b },
	"halff":     func(a float64) float64 { return a / 2 },
	"float":     func(i int) float64 { return float64(i) },
	"predicted": predicted, "observed": observed, "agreement": agreement, "recommended": recommended, "interval": interval, "ratioInterval": ratioInterval,
}).Parse(htmlTemplate))

// WriteHTML renders r as one self-contained HTML page: inline SVG charts
// and CSS, no script, nothing fetched at view time.
func WriteHTML(w io.Writer, r *SweepReport) error {
	return pageTmpl.Execute(w, buildPage(r))
}

type page struct {
	R        *SweepReport // nil for a page that is not a sweep's
	Title    string
	Sub      string // the line under the title, when R is nil
	Charts   []chart
	Tables   []table // tables after the charts (capacity)
	Config   [][2]string
	Manifest [][2]string
}

// chart is one SVG figure in plot coordinates already mapped to pixels.
type chart struct {
	Title, Caption string
	XLabel, YLabel string
	W, H           int
	Left, Top      float64 // plot area origin
	PW, PH         float64 // plot area size
	XTicks, YTicks []tick
	Lines          []line
	HLines         []hline
	Bars           []bar
	Legend         []legendItem
}

type tick struct {
	Pos   float64
	Label string
}

type line struct {
	Name, Color string
	Points      string // SVG polyline points
	Dots        []dot
	Dash        bool
}

type dot struct {
	X, Y  float64
	Title string
}

type hline struct {
	Y     float64
	Label string
	Color string
}

type bar struct {
	X, Y, W, H float64
	Color      string
	Title      string
}

type legendItem struct {
	Name, Color string
	Dash        bool
}

var modeColors = map[string]string{
	coordinator.ModeSerial:     "#7f7f7f",
	coordinator.ModeGoroutines: "#1f77b4",
	coordinator.ModeGIL:        "#9467bd",
	coordinator.ModeCodec:      "#2ca02c",
	coordinator.ModeProcesses:  "#d62728",
}

func modeColor(m string) string {
	if c, ok := modeColors[m]; ok {
		return c
	}
	return "#333333"
}

// axis maps data values to pixels: log2 or linear.
type axis struct {
	lo, hi float64
	log    bool
	px0    float64 // pixel of lo
	px1    float64 // pixel of hi
}

func (a axis) at(v float64) float64 {
	lo, hi := a.lo, a.hi
	if a.log {
		v, lo, hi = math.Log2(math.Max(v, 1e-9)), math.Log2(lo), math.Log2(hi)
	}
	if hi == lo {
		return (a.px0 + a.px1) / 2
	}
	return a.px0 + (v-lo)/(hi-lo)*(a.px1-a.px0)
}

func newChart(title, xl, yl string) chart {
	c := chart{Title: title, XLabel: xl, YLabel: yl, W: 540, H: 320, Left: 70, Top: 20}
	c.PW, c.PH = float64(c.W)-c.Left-20, float64(c.H)-c.Top-50
	return c
}

func (c *chart) xAxis(lo, hi float64, log bool) axis {
	return axis{lo: lo, hi: hi, log: log, px0: c.Left, px1: c.Left + c.PW}
}

func (c *chart) yAxis(lo, hi float64) axis {
	return axis{lo: lo, hi: hi, px0: c.Top + c.PH, px1: c.Top}
}

// niceTicks returns about n round values covering [lo, hi].
func niceTicks(lo, hi float64, n int) []float64 {
	if hi <= lo {
		return []float64{lo}
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		out = append(out, v)
	}
	return out
}

func fmtNum(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case a >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	case a == 0:
		return "0"
	case a < 1:
		return fmt.Sprintf("%.2g", v)
	}
	return fmt.Sprintf("%.3g", v)
}

func (c *chart) ticks(x, y axis, xs []float64, yFmt func(float64) string) {
	for _, v := range xs {
		c.XTicks = append(c.XTicks, tick{Pos: x.at(v), Label: fmtNum(v)})
	}
	for _, v := range niceTicks(y.lo, y.hi, 5) {
		c.YTicks = append(c.YTicks, tick{Pos: y.at(v), Label: yFmt(v)})
	}
}

func polyline(x, y axis, xs, ys []float64) string {
	var b strings.Builder
	for i := range xs {
		fmt.Fprintf(&b, "%.1f,%.1f ", x.at(xs[i]), y.at(ys[i]))
	}
	return strings.TrimSpace(b.String())
}

// focusWorkers is the worker count the per-batch-size charts show: the
// usable cores if swept, else the largest count.
func focusWorkers(points []sweep.Summary, cores int) int {
	best := 0
	for _, p := range points {
		if p.Workers == cores {
			return cores
		}
		best = max(best, p.Workers)
	}
	return best
}

// setting is a series without its worker count: workload settings and codec.
func setting(p sweep.Point) string {
	s := p.Series()
	return s[:strings.LastIndex(s, "/workers=")]
}

func buildPage(r *SweepReport) page {
	pg := page{R: r, Title: "ferry sweep"}
	res := r.Sweep
	cores := r.Manifest.GOMAXPROCS
	if cores == 0 {
		cores = runtime.GOMAXPROCS(0)
	}
	w := focusWorkers(res.Points, cores)
	var settings []string
	for _, p := range res.Points {
		if s := setting(p.Point); !slices.Contains(settings, s) {
			settings = append(settings, s)
		}
	}
	for _, s := range settings {
		var pts []sweep.Summary
		for _, p := range res.Points {
			if setting(p.Point) == s && p.N > 0 {
				pts = append(pts, p)
			}
		}
		pg.Charts = append(pg.Charts, throughputChart(s, w, pts))
		for _, be := range res.BreakEvens {
			if be.Workers == w && strings.HasPrefix(be.Series, s+"/") {
				pg.Charts = append(pg.Charts, overheadChart(s, be, res.Level))
			}
		}
		if c, ok := splitChart(s, w, pts); ok {
			pg.Charts = append(pg.Charts, c)
		}
		if c, ok := scalingChart(s, pts, cores); ok {
			pg.Charts = append(pg.Charts, c)
		}
	}
	pg.Manifest = append(manifestRows(r.Manifest),
		[2]string{"seed", fmt.Sprint(res.Seed)},
		[2]string{"repeats", fmt.Sprint(res.Repeats)},
		[2]string{"runs", fmt.Sprint(len(res.Records))},
	)
	pg.Config = configRows(r.Config)
	return pg
}

// manifestRows is the machine part of a page's run manifest.
func manifestRows(m Manifest) [][2]string {
	return [][2]string{
		{"Go", m.GoVersion + " " + m.GOOS + "/" + m.GOARCH},
		{"CPUs (NumCPU)", fmt.Sprint(m.NumCPU)},
		{"GOMAXPROCS", fmt.Sprint(m.GOMAXPROCS)},
		{"cgroup CPU quota", orNone(m.CgroupCPU)},
		{"CPU model", orNone(m.CPUModel)},
		{"nats-server", m.NATSServer},
	}
}

// configRows is a page's configuration table, keys sorted.
func configRows(cfg map[string]any) [][2]string {
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var rows [][2]string
	for _, k := range keys {
		rows = append(rows, [2]string{k, fmt.Sprint(cfg[k])})
	}
	return rows
}

func orNone(s string) string {
	if s == "" {
		return "(not available)"
	}
	return s
}

func batchAxis(pts []sweep.Summary) (lo, hi float64, xs []float64) {
	for _, p := range pts {
		if p.BatchSize > 0 && !slices.Contains(xs, float64(p.BatchSize)) {
			xs = append(xs, float64(p.BatchSize))
		}
	}
	slices.Sort(xs)
	if len(xs) == 0 {
		return 1, 2, nil
	}
	lo, hi = xs[0], xs[len(xs)-1]
	if hi == lo {
		hi = lo * 2
	}
	return lo, hi, xs
}

// throughputChart: median docs/s against batch size per mode at w workers,
// with the min..max range as a whisker.
func throughputChart(s string, w int, all []sweep.Summary) chart {
	c := newChart("Throughput vs batch size", "batch size (documents, log scale)", "documents per second")
	c.Caption = fmt.Sprintf("%s, %d workers: median of the repeats, whiskers from min to max", s, w)
	var pts []sweep.Summary
	ymax := 0.0
	for _, p := range all {
		if p.Workers == w && p.BatchSize > 0 {
			pts = append(pts, p)
			ymax = max(ymax, p.DocsPerS.Max)
		}
	}
	lo, hi, xs := batchAxis(pts)
	x, y := c.xAxis(lo, hi, true), c.yAxis(0, niceMax(ymax))
	c.ticks(x, y, xs, fmtNum)
	for _, mode := range modesOf(pts) {
		var mx, my []float64
		l := line{Name: mode, Color: modeColor(mode)}
		for _, p := range pts {
			if p.Mode != mode {
				continue
			}
			mx, my = append(mx, float64(p.BatchSize)), append(my, p.DocsPerS.Median)
			px := x.at(float64(p.BatchSize))
			l.Dots = append(l.Dots, dot{X: px, Y: y.at(p.DocsPerS.Median), Title: fmt.Sprintf("%s batch %d: %.0f docs/s (%.0f..%.0f)", mode, p.BatchSize, p.DocsPerS.Median, p.DocsPerS.Min, p.DocsPerS.Max)})
			c.Bars = append(c.Bars, bar{X: px - 0.5, W: 1, Y: y.at(p.DocsPerS.Max), H: y.at(p.DocsPerS.Min) - y.at(p.DocsPerS.Max), Color: modeColor(mode)})
		}
		l.Points = polyline(x, y, mx, my)
		c.Lines = append(c.Lines, l)
		c.Legend = append(c.Legend, legendItem{Name: mode, Color: modeColor(mode)})
	}
	return c
}

func modesOf(pts []sweep.Summary) []string {
	var out []string
	for _, m := range coordinator.Modes() {
		for _, p := range pts {
			if p.Mode == m {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	t := niceTicks(0, v*1.05, 5)
	return max(t[len(t)-1], v*1.05)
}

// overheadChart: 1 - processes/goroutines throughput against batch size,
// observed and predicted by the fits, with the break-even marked.
func overheadChart(s string, be sweep.BreakEven, level float64) chart {
	c := newChart("Process overhead vs batch size", "batch size (documents, log scale)", "overhead: 1 - processes / goroutines")
	c.Caption = fmt.Sprintf("%s, %d workers: observed medians (dots) and the fit t(b) = a + c*b (line); break-even where overhead = %.0f%%",
		s, be.Workers, 100*(1-level))
	if len(be.Ratios) == 0 {
		return c
	}
	lo, hi := float64(be.Ratios[0].Batch), float64(be.Ratios[len(be.Ratios)-1].Batch)
	if hi == lo {
		hi = 2 * lo
	}
	ymin, ymax := 0.0, 0.1
	for _, r := range be.Ratios {
		ymin, ymax = min(ymin, 1-r.Observed), max(ymax, 1-r.Observed, 1-r.Predicted)
	}
	ymax = math.Min(ymax, 1)
	x, y := c.xAxis(lo, hi, true), c.yAxis(math.Max(ymin, -0.5), ymax*1.05)
	var xs []float64
	for _, r := range be.Ratios {
		xs = append(xs, float64(r.Batch))
	}
	c.ticks(x, y, xs, func(v float64) string { return fmt.Sprintf("%.0f%%", 100*v) })
	// the fitted curve, sampled finely in log space
	var fx, fy []float64
	for i := 0; i <= 60; i++ {
		b := math.Exp(math.Log(lo) + float64(i)/60*(math.Log(hi)-math.Log(lo)))
		g := be.Goroutines.Throughput(b)
		if g <= 0 {
			continue
		}
		fx, fy = append(fx, b), append(fy, math.Max(math.Min(1-be.Processes.Throughput(b)/g, ymax*1.05), y.lo))
	}
	c.Lines = append(c.Lines, line{Name: "fit", Color: "#444444", Points: polyline(x, y, fx, fy), Dash: true})
	obs := line{Name: "observed", Color: modeColor(coordinator.ModeProcesses)}
	var ox, oy []float64
	clamp := func(v float64) float64 { return math.Min(math.Max(v, y.lo), y.hi) }
	for _, r := range be.Ratios {
		ox, oy = append(ox, float64(r.Batch)), append(oy, clamp(1-r.Observed))
		obs.Dots = append(obs.Dots, dot{X: x.at(float64(r.Batch)), Y: y.at(clamp(1 - r.Observed)), Title: fmt.Sprintf("batch %d: overhead %.1f%% (fit %.1f%%)", r.Batch, 100*(1-r.Observed), 100*(1-r.Predicted))})
	}
	obs.Points = polyline(x, y, ox, oy)
	c.Lines = append(c.Lines, obs)
	c.HLines = append(c.HLines, hline{Y: y.at(1 - level), Label: fmt.Sprintf("%.0f%%", 100*(1-level)), Color: "#999999"})
	if !be.Never && be.Predicted >= lo && be.Predicted <= hi {
		c.Bars = append(c.Bars, bar{X: x.at(be.Predicted) - 1, W: 2, Y: c.Top, H: c.PH, Color: "#444444", Title: fmt.Sprintf("predicted break-even %.1f", be.Predicted)})
	}
	if be.Observed > 0 && be.Observed >= lo && be.Observed <= hi {
		c.Bars = append(c.Bars, bar{X: x.at(be.Observed) - 1, W: 2, Y: c.Top, H: c.PH, Color: modeColor(coordinator.ModeProcesses), Title: fmt.Sprintf("observed break-even %.1f", be.Observed)})
	}
	c.Legend = []legendItem{{Name: "observed", Color: modeColor(coordinator.ModeProcesses)}, {Name: "fit", Color: "#444444", Dash: true},
		{Name: fmt.Sprintf("break-even: predicted %s, observed %s", predicted(be), observed(be)), Color: "#444444"}}
	return c
}

var splitColors = []string{"#ff7f0e", "#9467bd", "#c5b0d5", "#17becf", "#2ca02c"}
var splitNames = []string{"encode", "transport", "queue", "decode", "compute"}

// splitChart: per batch size, processes' per-batch time split into encode
// (both sides), transport, the wait in the worker behind a pipelined batch
// (queue; 0 from records before it was measured, when transport holds it),
// decode (both sides) and compute, as shares of the whole.
func splitChart(s string, w int, all []sweep.Summary) (chart, bool) {
	c := newChart("Per-batch time split (processes)", "batch size (documents)", "share of the per-batch time")
	c.Caption = fmt.Sprintf("%s, %d workers: medians of each stage's mean; encode = coordinator + worker encode, decode = worker + coordinator decode", s, w)
	var pts []sweep.Summary
	for _, p := range all {
		if p.Mode == coordinator.ModeProcesses && p.Workers == w && p.BatchSize > 0 {
			pts = append(pts, p)
		}
	}
	if len(pts) == 0 {
		return c, false
	}
	slices.SortFunc(pts, func(a, b sweep.Summary) int { return a.BatchSize - b.BatchSize })
	y := c.yAxis(0, 1)
	slot := c.PW / float64(len(pts))
	for i, p := range pts {
		parts := []float64{p.EncodeUs + p.WorkerEncodeUs, p.TransportUs, p.QueueUs, p.WorkerDecodeUs + p.DecodeUs, p.ComputeUs}
		total := 0.0
		for _, v := range parts {
			total += v
		}
		if total <= 0 {
			continue
		}
		x0 := c.Left + float64(i)*slot + slot*0.15
		acc := 0.0
		for j, v := range parts {
			top, bottom := y.at(acc+v/total), y.at(acc)
			c.Bars = append(c.Bars, bar{X: x0, W: slot * 0.7, Y: top, H: bottom - top, Color: splitColors[j],
				Title: fmt.Sprintf("batch %d, %s: %.0f us (%.0f%%)", p.BatchSize, splitNames[j], v, 100*v/total)})
			acc += v / total
		}
		c.XTicks = append(c.XTicks, tick{Pos: x0 + slot*0.35, Label: fmt.Sprint(p.BatchSize)})
	}
	for _, v := range niceTicks(0, 1, 4) {
		c.YTicks = append(c.YTicks, tick{Pos: y.at(v), Label: fmt.Sprintf("%.0f%%", 100*v)})
	}
	for j, n := range splitNames {
		c.Legend = append(c.Legend, legendItem{Name: n, Color: splitColors[j]})
	}
	return c, true
}

// scalingChart: best median throughput over batch sizes against workers
// per mode, with each mode's ideal line (one worker's throughput x workers).
func scalingChart(s string, all []sweep.Summary, cores int) (chart, bool) {
	c := newChart("Scaling vs workers", "workers", "documents per second (best batch size)")
	c.Caption = fmt.Sprintf("%s: dashed lines are ideal linear scaling from one worker; the grey line marks the %d usable cores", s, cores)
	best := map[string]map[int]float64{}
	var ws []float64
	for _, p := range all {
		if p.BatchSize == 0 {
			continue
		}
		if best[p.Mode] == nil {
			best[p.Mode] = map[int]float64{}
		}
		best[p.Mode][p.Workers] = max(best[p.Mode][p.Workers], p.DocsPerS.Median)
		if !slices.Contains(ws, float64(p.Workers)) {
			ws = append(ws, float64(p.Workers))
		}
	}
	if len(ws) < 2 {
		return c, false
	}
	slices.Sort(ws)
	ymax := 0.0
	for _, m := range best {
		for _, v := range m {
			ymax = max(ymax, v)
		}
	}
	x, y := c.xAxis(ws[0], ws[len(ws)-1], false), c.yAxis(0, niceMax(ymax))
	c.ticks(x, y, ws, fmtNum)
	for _, mode := range coordinator.Modes() {
		m, ok := best[mode]
		if !ok {
			continue
		}
		l := line{Name: mode, Color: modeColor(mode)}
		var mx, my []float64
		for _, wv := range ws {
			v, ok := m[int(wv)]
			if !ok {
				continue
			}
			mx, my = append(mx, wv), append(my, v)
			l.Dots = append(l.Dots, dot{X: x.at(wv), Y: y.at(v), Title: fmt.Sprintf("%s, %d workers: %.0f docs/s", mode, int(wv), v)})
		}
		l.Points = polyline(x, y, mx, my)
		c.Lines = append(c.Lines, l)
		if one, ok := m[int(ws[0])]; ok {
			per := one / ws[0]
			ix := []float64{ws[0], ws[len(ws)-1]}
			iy := []float64{one, math.Min(per*ws[len(ws)-1], y.hi)}
			ix[1] = math.Min(ws[len(ws)-1], y.hi/per)
			c.Lines = append(c.Lines, line{Name: mode + " ideal", Color: modeColor(mode), Points: polyline(x, y, ix, iy), Dash: true})
		}
		c.Legend = append(c.Legend, legendItem{Name: mode, Color: modeColor(mode)})
	}
	c.Legend = append(c.Legend, legendItem{Name: "ideal", Color: "#444444", Dash: true})
	if fc := float64(cores); fc >= ws[0] && fc <= ws[len(ws)-1] {
		c.Bars = append(c.Bars, bar{X: x.at(fc) - 0.5, W: 1, Y: c.Top, H: c.PH, Color: "#bbbbbb", Title: fmt.Sprintf("%d usable cores", cores)})
	}
	return c, true
}
