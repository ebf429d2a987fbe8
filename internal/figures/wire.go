package figures

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// The wire (docs/wire.md): the transport bench, the floor and stages of a
// run, compression, dispatch and the codec benchmarks.
var wireSet = Set{Name: "wire", Cmds: []Cmd{
	{Key: "bench", Args: benchArgs("500"), Quick: benchArgs("100")},
	{Key: "bench-s2", Args: []string{"bench", "transport", "--sizes", "64KiB,1MiB", "--roundtrips", "200", "--compress", "s2"},
		Quick: []string{"bench", "transport", "--sizes", "64KiB,1MiB", "--roundtrips", "50", "--compress", "s2"}},
	{Key: "run", Args: wireRunArgs(), Quick: append(wireRunArgs(), "--docs", "20000")},
	{Key: "run-s2", Args: []string{"run", "-q", "--modes", "processes", "--compress", "s2"},
		Quick: []string{"run", "-q", "--modes", "processes", "--compress", "s2", "--docs", "20000"}},
	{Key: "run-msgpack", Args: []string{"run", "-q", "--modes", "codec,processes", "--codec", "msgpack"},
		Quick: []string{"run", "-q", "--modes", "codec,processes", "--codec", "msgpack", "--docs", "5000"}},
	{Key: "dispatch-2", Args: dispatchArgs("2", "200000"), Quick: dispatchArgs("2", "20000")},
	{Key: "dispatch-16", Args: dispatchArgs("16", "200000"), Quick: dispatchArgs("16", "20000")},
	{Key: "dispatch-64", Args: dispatchArgs("64", "200000"), Quick: dispatchArgs("64", "20000")},
	{Key: "bench-text", Text: true, Args: benchArgs("500"), Quick: benchArgs("100")},
	{Key: "run-text", Text: true, Args: wireRunArgs(), Quick: append(wireRunArgs(), "--docs", "20000")},
	{Key: "go-codec", Go: true, Args: goBench("BenchmarkCodec", "2000x", "./proto/"), Quick: goBench("BenchmarkCodec", "200x", "./proto/")},
	{Key: "go-floor", Go: true, Args: goBench("BenchmarkRoundTrip", "1000x", "./lab/floor/"), Quick: goBench("BenchmarkRoundTrip", "100x", "./lab/floor/")},
	{Key: "go-modes", Go: true, Args: goBench("BenchmarkModes", "10x", "./coordinator/"), Quick: goBench("BenchmarkModes", "2x", "./coordinator/")},
	{Key: "go-dispatch", Go: true, Args: goBench("BenchmarkDispatch", "5x", "./coordinator/"), Quick: goBench("BenchmarkDispatch", "1x", "./coordinator/")},
}}

func benchArgs(roundtrips string) []string {
	return []string{"bench", "transport", "--sizes", "64,64KiB,1MiB", "--roundtrips", roundtrips}
}

func wireRunArgs() []string {
	return []string{"run", "-q", "--modes", "serial,goroutines,gil,codec,processes"}
}

func dispatchArgs(inflight, docs string) []string {
	return []string{"run", "-q", "--modes", "processes", "--workload", "noop", "--batch-size", "1",
		"--doc-words", "2", "--docs", docs, "--inflight", inflight}
}

func goBench(name, benchtime, pkg string) []string {
	return []string{"test", "-run", "^$", "-bench", name, "-benchtime", benchtime, pkg}
}

// transportReport is what the figures read of ferry.transport/v1.
type transportReport struct {
	Points []struct {
		Bytes     int     `json:"bytes"`
		RawP50    float64 `json:"raw_p50_us"`
		FerryP50  float64 `json:"ferry_p50_us"`
		Ratio     float64 `json:"ratio"`
		PythonP50 float64 `json:"python_p50_us"`
		VsPython  float64 `json:"ferry_over_python"`
	} `json:"points"`
}

// point is the named size's point in every round, through f.
func pointOf(rs []transportReport, bytes int, f func(raw, ferry, ratio, py, vs float64) float64) stat {
	return of(rs, func(r transportReport) float64 {
		for _, p := range r.Points {
			if p.Bytes == bytes {
				return f(p.RawP50, p.FerryP50, p.Ratio, p.PythonP50, p.VsPython)
			}
		}
		return math.NaN()
	})
}

// wireRun is what the wire reads of a ferry.report/v1.
type wireRun struct {
	Modes []struct {
		Mode     string  `json:"mode"`
		Workers  int     `json:"workers"`
		WallS    float64 `json:"wall_s"`
		DocsPerS float64 `json:"docs_per_s"`
		Batches  int64   `json:"batches"`
		BytesOut int64   `json:"bytes_out"`
		BytesIn  int64   `json:"bytes_in"`
		CPUus    float64 `json:"cpu_us_per_doc"`
		Stages   map[string]struct {
			P50  float64 `json:"p50_us"`
			Mean float64 `json:"mean_us"`
		} `json:"stages"`
	} `json:"modes"`
	Floor []struct {
		Bytes    int     `json:"bytes"`
		RawP50   float64 `json:"raw_p50_us"`
		FerryP50 float64 `json:"ferry_p50_us"`
		Ratio    float64 `json:"ratio"`
		RawCPU   float64 `json:"raw_cpu_us_per_roundtrip"`
	} `json:"transport_floor"`
}

// mode returns the named mode's index, or -1.
func (r wireRun) mode(name string) int {
	for i, m := range r.Modes {
		if m.Mode == name {
			return i
		}
	}
	return -1
}

// modeOf is f of the named mode in every round.
func modeOf(rs []wireRun, name string, f func(r wireRun, i int) float64) stat {
	return of(rs, func(r wireRun) float64 {
		if i := r.mode(name); i >= 0 {
			return f(r, i)
		}
		return math.NaN()
	})
}

type wireData struct {
	d                         *Data
	bench, benchS2            []transportReport
	run, runS2, runMsgpack    []wireRun
	dispatch                  map[string][]wireRun
	codec, floor, modes, disp []benchLine
}

func loadWire(d *Data) (*wireData, error) {
	w := &wireData{d: d, dispatch: map[string][]wireRun{}}
	var err error
	if w.bench, err = decode[transportReport](d.Of("bench")); err != nil {
		return nil, err
	}
	if w.benchS2, err = decode[transportReport](d.Of("bench-s2")); err != nil {
		return nil, err
	}
	for key, to := range map[string]*[]wireRun{"run": &w.run, "run-s2": &w.runS2, "run-msgpack": &w.runMsgpack} {
		if *to, err = decode[wireRun](d.Of(key)); err != nil {
			return nil, err
		}
	}
	for _, n := range []string{"2", "16", "64"} {
		if w.dispatch[n], err = decode[wireRun](d.Of("dispatch-" + n)); err != nil {
			return nil, err
		}
	}
	w.codec, w.floor, w.modes, w.disp = benchLines(d, "go-codec"), benchLines(d, "go-floor"), benchLines(d, "go-modes"), benchLines(d, "go-dispatch")
	return w, nil
}

func (w *wireData) cmd(key string) string {
	if rs := w.d.Of(key); len(rs) > 0 {
		return "`" + rs[0].Command + "`"
	}
	return "?"
}

// benchLine is one line of go test -bench output.
type benchLine struct {
	Name   string // without the -GOMAXPROCS suffix
	Line   string
	Values map[string]float64 // by unit
}

func benchLines(d *Data, key string) []benchLine {
	var out []benchLine
	for _, r := range d.Of(key) {
		for _, line := range strings.Split(r.Text, "\n") {
			f := strings.Fields(line)
			if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
				continue
			}
			name := f[0]
			if i := strings.LastIndexByte(name, '-'); i > 0 {
				if _, err := strconv.Atoi(name[i+1:]); err == nil {
					name = name[:i]
				}
			}
			b := benchLine{Name: name, Line: strings.Join(f, " "), Values: map[string]float64{}}
			for i := 2; i+1 < len(f); i += 2 {
				if v, err := strconv.ParseFloat(f[i], 64); err == nil {
					b.Values[f[i+1]] = v
				}
			}
			out = append(out, b)
		}
	}
	return out
}

// value is unit of the benchmark named name, NaN when absent.
func value(bs []benchLine, name, unit string) float64 {
	for _, b := range bs {
		if b.Name == name {
			if v, ok := b.Values[unit]; ok {
				return v
			}
		}
	}
	return math.NaN()
}

// us is microseconds with sensible decimals.
func us(x float64) string {
	switch {
	case math.IsNaN(x):
		return "-"
	case x < 10:
		return fmt.Sprintf("%.1f us", x)
	default:
		return grouped(x) + " us"
	}
}

func renderWireStages(d *Data) (string, error) {
	w, err := loadWire(d)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s, `processes`, per batch, medians (us):\n\n| stage | p50 | mean |\n|---|---:|---:|\n", w.cmd("run"))
	for _, st := range []string{"encode", "transport", "worker_decode", "compute", "worker_encode", "decode"} {
		p50 := modeOf(w.run, "processes", func(r wireRun, i int) float64 { return r.Modes[i].Stages[st].P50 })
		mean := modeOf(w.run, "processes", func(r wireRun, i int) float64 { return r.Modes[i].Stages[st].Mean })
		fmt.Fprintf(&b, "| %s | %s | %s |\n", st, grouped(p50.med), grouped(mean.med))
	}
	r := w.run[0]
	if n := len(r.Floor); n > 0 {
		f := r.Floor[n-1]
		fmt.Fprintf(&b, "\nThe floor line of the same run (first round): %s KiB each way, ferry %s against the raw echo's %s (%s).\n",
			fixed(1)(float64(f.Bytes)/1024), us(f.FerryP50), us(f.RawP50), times(f.Ratio))
	}
	return b.String(), nil
}

func renderWireCPU(d *Data) (string, error) {
	w, err := loadWire(d)
	if err != nil {
		return "", err
	}
	cpu := func(mode string) stat {
		return modeOf(w.run, mode, func(r wireRun, i int) float64 { return r.Modes[i].CPUus })
	}
	g, p := cpu("goroutines"), cpu("processes")
	ratio := of(w.run, func(r wireRun) float64 {
		gi, pi := r.mode("goroutines"), r.mode("processes")
		if gi < 0 || pi < 0 {
			return math.NaN()
		}
		return r.Modes[pi].CPUus / r.Modes[gi].CPUus
	})
	perDoc := modeOf(w.run, "processes", func(r wireRun, i int) float64 {
		m := r.Modes[i]
		return float64(m.BytesOut+m.BytesIn) / (m.DocsPerS * m.WallS)
	})
	return fmt.Sprintf("%s: CPU per document, goroutines %s, processes %s: processes spend %s the CPU of goroutines for `embed` at batch 100, moving %s bytes per document through the broker.\n",
		w.cmd("run"), us(g.med), us(p.med), ratio.format(times), grouped(perDoc.med)), nil
}

func renderWireCodec(d *Data) (string, error) {
	w, err := loadWire(d)
	if err != nil {
		return "", err
	}
	if len(w.codec) == 0 {
		return "", fmt.Errorf("no codec benchmarks")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s:\n\n| shape | op | packed | msgpack (reflection) |\n|---|---|---:|---:|\n", w.cmd("go-codec"))
	cell := func(codec, shape, op string) string {
		name := fmt.Sprintf("BenchmarkCodec/codec=%s/shape=%s/op=%s", codec, shape, op)
		ns, mbs, allocs := value(w.codec, name, "ns/op"), value(w.codec, name, "MB/s"), value(w.codec, name, "allocs/op")
		if math.IsNaN(ns) {
			return "-"
		}
		s := us(ns / 1000)
		if mbs >= 1000 {
			s += fmt.Sprintf(", %.1f GB/s", mbs/1000)
		} else if !math.IsNaN(mbs) {
			s += fmt.Sprintf(", %.0f MB/s", mbs)
		}
		if !math.IsNaN(allocs) {
			s += fmt.Sprintf(", %.0f allocs", allocs)
		}
		return s
	}
	for _, shape := range []string{"embed100", "batch100", "chunk100"} {
		for _, op := range []string{"encode", "decode"} {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", shape, op, cell("packed", shape, op), cell("msgpack", shape, op))
		}
	}
	rt := "BenchmarkCodecRatio/shape=embed100/op=roundtrip"
	fmt.Fprintf(&b, "\n`BenchmarkCodecRatio` (encode + decode of embed100): packed %s, msgpack %s, **%.0fx**, packed at %.1f GB/s.\n",
		us(value(w.codec, rt, "packed-ns/op")/1000), us(value(w.codec, rt, "msgpack-ns/op")/1000),
		value(w.codec, rt, "speedup"), value(w.codec, rt, "packed-MB/s")/1000)
	return b.String(), nil
}

func renderWireMsgpack(d *Data) (string, error) {
	w, err := loadWire(d)
	if err != nil {
		return "", err
	}
	proc := func(rs []wireRun, f func(r wireRun, i int) float64) float64 { return modeOf(rs, "processes", f).med }
	cpu := func(r wireRun, i int) float64 { return r.Modes[i].CPUus }
	stage := func(s string) float64 {
		return proc(w.runMsgpack, func(r wireRun, i int) float64 { return r.Modes[i].Stages[s].P50 })
	}
	return fmt.Sprintf("End to end (%s): %s of CPU per document against packed's %s (%s); the worker's result encode takes %s and the coordinator's decode %s per batch (p50), against a compute of %s.\n",
		w.cmd("run-msgpack"), us(proc(w.runMsgpack, cpu)), us(proc(w.run, cpu)), w.cmd("run"),
		us(stage("worker_encode")), us(stage("decode")), us(stage("compute"))), nil
}

func renderWireCompress(d *Data) (string, error) {
	w, err := loadWire(d)
	if err != nil {
		return "", err
	}
	ratio := func(rs []transportReport, n int) string {
		return pointOf(rs, n, func(_, _, r, _, _ float64) float64 { return r }).format(times)
	}
	mb := func(rs []wireRun) string {
		o := modeOf(rs, "processes", func(r wireRun, i int) float64 { return float64(r.Modes[i].BytesOut) / 1e6 })
		in := modeOf(rs, "processes", func(r wireRun, i int) float64 { return float64(r.Modes[i].BytesIn) / 1e6 })
		return fmt.Sprintf("%.2f / %.2f MB", o.med, in.med)
	}
	cpu := func(rs []wireRun) string {
		return us(modeOf(rs, "processes", func(r wireRun, i int) float64 { return r.Modes[i].CPUus }).med)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Plain: %s and %s; s2: %s and %s.\n\n", w.cmd("bench"), w.cmd("run"), w.cmd("bench-s2"), w.cmd("run-s2"))
	b.WriteString("| | plain | s2 |\n|---|---:|---:|\n")
	fmt.Fprintf(&b, "| `bench transport`, 64 KiB of text, ferry/raw | %s | %s |\n", ratio(w.bench, 65536), ratio(w.benchS2, 65536))
	fmt.Fprintf(&b, "| `bench transport`, 1 MiB, ferry/raw | %s | %s |\n", ratio(w.bench, 1<<20), ratio(w.benchS2, 1<<20))
	fmt.Fprintf(&b, "| `ferry run` embed, bytes sent / received | %s | %s |\n", mb(w.run), mb(w.runS2))
	fmt.Fprintf(&b, "| `ferry run` embed, processes CPU per document | %s | %s |\n", cpu(w.run), cpu(w.runS2))
	return b.String(), nil
}

// batchesPerS is processes' batches per second in every round.
func batchesPerS(rs []wireRun) stat {
	return modeOf(rs, "processes", func(r wireRun, i int) float64 { return float64(r.Modes[i].Batches) / r.Modes[i].WallS })
}

func renderWireDispatch(d *Data) (string, error) {
	w, err := loadWire(d)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "`ferry run` is %s at each `--inflight`; `BenchmarkDispatch` is %s.\n\n", w.cmd("dispatch-64"), w.cmd("go-dispatch"))
	b.WriteString("| `--inflight` | batches/s (`ferry run`) | `BenchmarkDispatch` batches/s | coordinator CPU / batch | worker CPU / batch |\n|---:|---:|---:|---:|---:|\n")
	rows := map[int]string{}
	for _, n := range []string{"2", "16", "64"} {
		k, _ := strconv.Atoi(n)
		rows[k] = grouped(batchesPerS(w.dispatch[n]).med)
	}
	benches := map[int]benchLine{}
	for _, bl := range w.disp {
		if _, v, ok := strings.Cut(bl.Name, "inflight="); ok {
			if k, err := strconv.Atoi(v); err == nil {
				benches[k] = bl
			}
		}
	}
	var ks []int
	for k := range rows {
		ks = append(ks, k)
	}
	for k := range benches {
		if _, ok := rows[k]; !ok {
			ks = append(ks, k)
		}
	}
	sort.Ints(ks)
	for _, k := range ks {
		run, bs, c, wk := "-", "-", "-", "-"
		if r, ok := rows[k]; ok {
			run = r
		}
		if bl, ok := benches[k]; ok {
			bs, c, wk = grouped(bl.Values["batches/s"]), us(bl.Values["coord-cpu-us/batch"]), us(bl.Values["worker-cpu-us/batch"])
		}
		label := strconv.Itoa(k)
		if k == 2 {
			label += " (default)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", label, run, bs, c, wk)
	}
	return b.String(), nil
}

// verdict is "met" when ok, else "not met".
func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

func renderWireGoals(d *Data) (string, error) {
	w, err := loadWire(d)
	if err != nil {
		return "", err
	}
	rt := "BenchmarkCodecRatio/shape=embed100/op=roundtrip"
	gbs, speedup := value(w.codec, rt, "packed-MB/s")/1000, value(w.codec, rt, "speedup")
	r64 := pointOf(w.bench, 64, func(_, _, r, _, _ float64) float64 { return r })
	floor64 := of(w.run, func(r wireRun) float64 {
		for _, f := range r.Floor {
			if f.Bytes == 64 {
				return f.Ratio
			}
		}
		return math.NaN()
	})
	vs := pointOf(w.bench, 64, func(_, _, _, _, v float64) float64 { return v })
	vs1m := pointOf(w.bench, 1<<20, func(_, _, _, _, v float64) float64 { return v })
	r1m := pointOf(w.bench, 1<<20, func(_, _, r, _, _ float64) float64 { return r })
	pg := of(w.run, func(r wireRun) float64 {
		gi, pi := r.mode("goroutines"), r.mode("processes")
		if gi < 0 || pi < 0 {
			return math.NaN()
		}
		return r.Modes[pi].DocsPerS / r.Modes[gi].DocsPerS
	})
	disp := batchesPerS(w.dispatch["64"])
	var b strings.Builder
	b.WriteString("| goal | measured | verdict |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| `packed` encode+decode of embedding results at least 1 GB/s and 20x msgpack | %.1f GB/s, %.0fx msgpack's round trip (`BenchmarkCodecRatio`) | %s |\n",
		gbs, speedup, verdict(gbs >= 1 && speedup >= 20))
	fmt.Fprintf(&b, "| per-batch fixed overhead (64 B, empty compute) at most 1.5x raw NATS echo | %s (`bench transport`); %s (the floor line of `ferry run`) | %s |\n",
		r64.format(times), floor64.format(times), verdict(r64.med <= 1.5))
	if math.IsNaN(vs.med) || vs.med == 0 {
		b.WriteString("| ... and at most 1/3 of Python's ProcessPoolExecutor round trip | no python3 on this machine | - |\n")
	} else {
		fmt.Fprintf(&b, "| ... and at most 1/3 of Python's ProcessPoolExecutor round trip | ferry over Python at 64 B: %s (at 1 MiB: %s) | %s |\n",
			vs.format(times), vs1m.format(times), verdict(vs.med <= 1.0/3))
	}
	fmt.Fprintf(&b, "| 1 MiB round trip at most 2x raw echo of 1 MiB | %s | %s |\n", r1m.format(times), verdict(r1m.med <= 2))
	fmt.Fprintf(&b, "| `embed` batch 100, 2 cores: processes at least 0.9x goroutines | %s (%s) | %s |\n", pg.format(times), w.cmd("run"), verdict(pg.med >= 0.9))
	fmt.Fprintf(&b, "| dispatch at least 40,000 empty batches/s with pipelining | %s batches/s (%s) | %s |\n",
		grouped(disp.med), w.cmd("dispatch-64"), verdict(disp.med >= 40000))
	return b.String(), nil
}

func renderWireBenchmarks(d *Data) (string, error) {
	w, err := loadWire(d)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("```\n")
	for _, key := range []string{"go-floor", "go-modes", "go-dispatch"} {
		fmt.Fprintf(&b, "$ %s\n", w.d.Of(key)[0].Command)
		for _, bl := range benchLines(w.d, key) {
			b.WriteString(bl.Line + "\n")
		}
	}
	b.WriteString("```\n")
	return b.String(), nil
}
