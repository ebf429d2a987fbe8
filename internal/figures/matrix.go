package figures

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// The decision matrix: every row's command (README.md, docs/matrix.md).
var matrixSet = Set{Name: "matrix", Cmds: []Cmd{
	{Key: "embed", Args: cpuArgs("embed", "--docs", "100000"), Quick: cpuArgs("embed", "--docs", "20000")},
	{Key: "chunk", Args: cpuArgs("chunk", "--docs", "100000", "--doc-words", "300"), Quick: cpuArgs("chunk", "--docs", "20000", "--doc-words", "300")},
	{Key: "infer", Args: cpuArgs("infer", "--docs", "20000"), Quick: cpuArgs("infer", "--docs", "2000")},
	{Key: "spin", Args: cpuArgs("spin", "--docs", "5000"), Quick: cpuArgs("spin", "--docs", "1000")},
	{Key: "llm", Args: llmArgs("5000"), Quick: llmArgs("1000")},
	{Key: "llm-warm", Args: append(llmArgs("5000"), "--llm-warmup"), Quick: append(llmArgs("1000"), "--llm-warmup")},
	{Key: "pipeline", Args: pipelineArgs("2000", "1000"), Quick: pipelineArgs("400", "200")},
	{Key: "spin-text", Text: true, Args: cpuArgs("spin", "--docs", "5000"), Quick: cpuArgs("spin", "--docs", "1000")},
	{Key: "infer-text", Text: true, Args: cpuArgs("infer", "--docs", "20000"), Quick: cpuArgs("infer", "--docs", "2000")},
	{Key: "llm-text", Text: true, Args: append(llmArgs("5000"), "--llm-warmup"), Quick: append(llmArgs("1000"), "--llm-warmup")},
	{Key: "pipeline-text", Text: true, Args: pipelineArgs("2000", "1000"), Quick: pipelineArgs("400", "200")},
}}

const cpuModes = "serial,goroutines,gil,processes"

func cpuArgs(workload string, more ...string) []string {
	return append(append([]string{"run", "-q", "--workload", workload}, more...), "--modes", cpuModes)
}

func llmArgs(docs string) []string {
	return []string{"llm", "--docs", docs, "--concurrency", docs, "--latency-p50", "500ms"}
}

func pipelineArgs(docs, concurrency string) []string {
	return []string{"pipeline", "-q", "--docs", docs, "--doc-words", "600", "--latency-p50", "500ms",
		"--concurrency", concurrency, "--modes", "serial,goroutines,processes"}
}

// runReport is what the matrix reads of a ferry.report/v1.
type runReport struct {
	Modes []struct {
		Mode     string  `json:"mode"`
		Workers  int     `json:"workers"`
		WallS    float64 `json:"wall_s"`
		DocsPerS float64 `json:"docs_per_s"`
		GFLOPs   float64 `json:"gflops"`
		Error    string  `json:"error"`
	} `json:"modes"`
	Identical bool `json:"identical_results"`
}

// mode is the named mode's docs/s, wall and GFLOP/s per worker.
func (r runReport) mode(name string) (docsPerS, wallS, gflopsPerCore float64) {
	for _, m := range r.Modes {
		if m.Mode == name && m.Error == "" {
			return m.DocsPerS, m.WallS, m.GFLOPs / math.Max(float64(m.Workers), 1)
		}
	}
	return math.NaN(), math.NaN(), math.NaN()
}

// ratio is mode a's docs/s over mode b's in every round.
func ratio(rs []runReport, a, b string) stat {
	return of(rs, func(r runReport) float64 {
		x, _, _ := r.mode(a)
		y, _, _ := r.mode(b)
		return x / y
	})
}

type llmReport struct {
	Calls   int64   `json:"calls"`
	Errors  int64   `json:"errors"`
	WallS   float64 `json:"wall_s"`
	P50ms   float64 `json:"latency_p50_ms"`
	P99ms   float64 `json:"latency_p99_ms"`
	SerialS float64 `json:"serial_estimate_s"`
}

type pipelineReport struct {
	Concurrency int `json:"concurrency"`
	Runs        []struct {
		Mode    string  `json:"mode"`
		WallS   float64 `json:"wall_s"`
		Docs    int64   `json:"docs"`
		Chunks  int64   `json:"chunks"`
		Overlap float64 `json:"overlap"`
		Error   string  `json:"error"`
	} `json:"runs"`
	Identical bool `json:"identical_results"`
}

// matrixData is the matrix set decoded.
type matrixData struct {
	d                       *Data
	embed, chunk, infer, sp []runReport
	llm, warm               []llmReport
	pipe                    []pipelineReport
}

func loadMatrix(d *Data) (*matrixData, error) {
	m := &matrixData{d: d}
	var err error
	for _, x := range []struct {
		key string
		to  *[]runReport
	}{{"embed", &m.embed}, {"chunk", &m.chunk}, {"infer", &m.infer}, {"spin", &m.sp}} {
		if *x.to, err = decode[runReport](d.Of(x.key)); err != nil {
			return nil, err
		}
	}
	if m.llm, err = decode[llmReport](d.Of("llm")); err != nil {
		return nil, err
	}
	if m.warm, err = decode[llmReport](d.Of("llm-warm")); err != nil {
		return nil, err
	}
	if m.pipe, err = decode[pipelineReport](d.Of("pipeline")); err != nil {
		return nil, err
	}
	return m, nil
}

// cmd is the command key ran, in backquotes.
func (m *matrixData) cmd(key string) string {
	if rs := m.d.Of(key); len(rs) > 0 {
		return "`" + rs[0].Command + "`"
	}
	return "?"
}

// flag is the value of a --name flag in key's command.
func (m *matrixData) flag(key, name string) string {
	rs := m.d.Of(key)
	if len(rs) == 0 {
		return ""
	}
	f := strings.Fields(rs[0].Command)
	for i := range f[:len(f)-1] {
		if f[i] == name {
			return f[i+1]
		}
	}
	return ""
}

func (m *matrixData) cpuCell(rs []runReport) string {
	return fmt.Sprintf("gil %s, goroutines %s, processes %s of serial; processes %s of goroutines",
		times(ratio(rs, "gil", "serial").med), times(ratio(rs, "goroutines", "serial").med),
		times(ratio(rs, "processes", "serial").med), times(ratio(rs, "processes", "goroutines").med))
}

func (m *matrixData) inferCell() string {
	g := of(m.infer, func(r runReport) float64 { _, _, x := r.mode("serial"); return x })
	return fmt.Sprintf("%.1f GFLOP/s on one core; ", g.med) + m.cpuCell(m.infer)
}

func (m *matrixData) llmCell() string {
	return fmt.Sprintf("%s calls of %s in %.2f s wall, %s errors; a serial loop would take about %s s",
		grouped(float64(m.warm[0].Calls)), m.flag("llm-warm", "--latency-p50"),
		of(m.warm, func(r llmReport) float64 { return r.WallS }).med,
		grouped(of(m.warm, func(r llmReport) float64 { return float64(r.Errors) }).med),
		grouped(of(m.warm, func(r llmReport) float64 { return r.SerialS }).med))
}

// pipeRun is one mode's run of the pipeline in each round.
func (m *matrixData) pipeWall(mode string) stat {
	return of(m.pipe, func(p pipelineReport) float64 {
		for _, r := range p.Runs {
			if r.Mode == mode && r.Error == "" {
				return r.WallS
			}
		}
		return math.NaN()
	})
}

// pipeIdeal is the least wall time the LLM calls allow: rounds of
// concurrency calls, each the configured latency.
func (m *matrixData) pipeIdeal() (calls int64, docs int64, ideal float64) {
	p := m.pipe[0]
	if len(p.Runs) == 0 || p.Concurrency <= 0 {
		return 0, 0, math.NaN()
	}
	lat, err := time.ParseDuration(m.flag("pipeline", "--latency-p50"))
	if err != nil {
		return p.Runs[0].Chunks, p.Runs[0].Docs, math.NaN()
	}
	calls, docs = p.Runs[0].Chunks, p.Runs[0].Docs
	waves := (calls + int64(p.Concurrency) - 1) / int64(p.Concurrency)
	return calls, docs, float64(waves) * lat.Seconds()
}

func (m *matrixData) pipelineCell() string {
	calls, docs, ideal := m.pipeIdeal()
	return fmt.Sprintf("%s calls behind chunking %s documents: %.1f s (goroutines), %.1f s (processes) against an ideal %.1f s",
		grouped(float64(calls)), grouped(float64(docs)), m.pipeWall("goroutines").med, m.pipeWall("processes").med, ideal)
}

// renderMatrix is README.md's decision matrix.
func renderMatrix(d *Data) (string, error) {
	m, err := loadMatrix(d)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("| work | Python | Go | ferry command | measured |\n|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| CPU: embedding | processes | goroutines | %s | %s |\n", m.cmd("embed"), m.cpuCell(m.embed))
	fmt.Fprintf(&b, "| CPU: local model inference | processes | goroutines | %s | %s |\n", m.cmd("infer"), m.inferCell())
	fmt.Fprintf(&b, "| CPU: calibrated cost | processes | goroutines | %s | %s |\n", m.cmd("spin"), m.cpuCell(m.sp))
	fmt.Fprintf(&b, "| I/O: LLM API calls | asyncio | a goroutine per call, bounded | %s | %s |\n", m.cmd("llm-warm"), m.llmCell())
	fmt.Fprintf(&b, "| hybrid: chunk -> LLM -> merge | asyncio + process pool | goroutines for I/O, goroutines or processes for CPU | %s | %s |\n",
		m.cmd("pipeline"), m.pipelineCell())
	return b.String(), nil
}

// renderMatrixRows is docs/matrix.md's table of every row.
func renderMatrixRows(d *Data) (string, error) {
	m, err := loadMatrix(d)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("| row | work | Python's answer | Go's answer | ferry command | measured here |\n|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| CPU-bound | embedding | processes (the GIL serialises threads) | goroutines; processes only to isolate | %s | %s |\n", m.cmd("embed"), m.cpuCell(m.embed))
	fmt.Fprintf(&b, "| CPU-bound | text preprocessing (chunking) | processes | goroutines | %s | %s |\n", m.cmd("chunk"), m.cpuCell(m.chunk))
	fmt.Fprintf(&b, "| CPU-bound | local model inference | processes | goroutines | %s | %s |\n", m.cmd("infer"), m.inferCell())
	fmt.Fprintf(&b, "| CPU-bound, calibrated | any fixed CPU cost per item | processes | goroutines | %s | %s |\n", m.cmd("spin"), m.cpuCell(m.sp))
	fmt.Fprintf(&b, "| I/O-bound | LLM API calls | asyncio | goroutines (one per call, bounded) | %s | %s |\n", m.cmd("llm-warm"), m.llmCell())
	b.WriteString("| I/O-bound | database queries | asyncio | goroutines | same mechanism as `ferry llm`; ferry has no database workload (see below) | - |\n")
	fmt.Fprintf(&b, "| hybrid | chunk -> LLM summary -> merge | asyncio + process pool | goroutines for the I/O, goroutines or worker processes for the CPU, streamed | %s | %s |\n",
		m.cmd("pipeline"), m.pipelineCell())
	return b.String(), nil
}

// renderMatrixCPU is docs/matrix.md's CPU table, every ratio with its range.
func renderMatrixCPU(d *Data) (string, error) {
	m, err := loadMatrix(d)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("| command | serial wall | gil / serial | goroutines / serial | processes / serial | processes / goroutines | identical results |\n|---|---|---|---|---|---|---|\n")
	for _, x := range []struct {
		key string
		rs  []runReport
	}{{"spin", m.sp}, {"embed", m.embed}, {"chunk", m.chunk}, {"infer", m.infer}} {
		wall := of(x.rs, func(r runReport) float64 { _, w, _ := r.mode("serial"); return w })
		same := "yes"
		for _, r := range x.rs {
			if !r.Identical {
				same = "NO"
			}
		}
		fmt.Fprintf(&b, "| %s | %s s | %s | %s | %s | %s | %s |\n", m.cmd(x.key), fixed(2)(wall.med),
			ratio(x.rs, "gil", "serial").format(times), ratio(x.rs, "goroutines", "serial").format(times),
			ratio(x.rs, "processes", "serial").format(times), ratio(x.rs, "processes", "goroutines").format(times), same)
	}
	one := of(m.infer, func(r runReport) float64 { _, _, g := r.mode("serial"); return g })
	both := of(m.infer, func(r runReport) float64 { _, _, g := r.mode("goroutines"); return g })
	fmt.Fprintf(&b, "\ninfer ran at **%s GFLOP/s on one core** in `serial` (the `per_core` column) and %s GFLOP/s per core on goroutines.\n",
		one.format(fixed(2)), both.format(fixed(2)))
	return b.String(), nil
}

// sample is a text run as the reader would see it in a terminal.
func sample(d *Data, keys ...string) (string, error) {
	var b strings.Builder
	b.WriteString("```\n")
	for _, k := range keys {
		rs := d.Of(k)
		if len(rs) == 0 {
			return "", fmt.Errorf("no %s run", k)
		}
		fmt.Fprintf(&b, "$ %s\n%s", rs[0].Command, strings.TrimRight(rs[0].Text, "\n")+"\n")
	}
	b.WriteString("```\n")
	return b.String(), nil
}

// renderMatrixLLM is docs/matrix.md's I/O table.
func renderMatrixLLM(d *Data) (string, error) {
	m, err := loadMatrix(d)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| setup | command | wall | p50 / p99 latency | errors | serial estimate |\n|---|---|---|---|---|---|\n")
	for _, x := range []struct {
		name, key string
		rs        []llmReport
	}{{"in-process mock, cold pool (the default)", "llm", m.llm}, {"in-process mock, `--llm-warmup`", "llm-warm", m.warm}} {
		fmt.Fprintf(&b, "| %s | %s | %s s | %s / %s ms | %s | %s s |\n", x.name, m.cmd(x.key),
			of(x.rs, func(r llmReport) float64 { return r.WallS }).format(fixed(2)),
			grouped(of(x.rs, func(r llmReport) float64 { return r.P50ms }).med),
			grouped(of(x.rs, func(r llmReport) float64 { return r.P99ms }).med),
			grouped(of(x.rs, func(r llmReport) float64 { return float64(r.Errors) }).med),
			grouped(of(x.rs, func(r llmReport) float64 { return r.SerialS }).med))
	}
	return b.String(), nil
}

// renderMatrixPipeline is docs/matrix.md's hybrid figures in one sentence.
func renderMatrixPipeline(d *Data) (string, error) {
	m, err := loadMatrix(d)
	if err != nil {
		return "", err
	}
	calls, docs, ideal := m.pipeIdeal()
	same := "identical"
	var modes []string
	for _, r := range m.pipe[0].Runs {
		w := m.pipeWall(r.Mode)
		ov := of(m.pipe, func(p pipelineReport) float64 {
			for _, x := range p.Runs {
				if x.Mode == r.Mode {
					return x.Overlap
				}
			}
			return math.NaN()
		})
		modes = append(modes, fmt.Sprintf("%s %s s (overlap %s)", r.Mode, w.format(fixed(2)), fixed(2)(ov.med)))
	}
	for _, p := range m.pipe {
		if !p.Identical {
			same = "NOT identical"
		}
	}
	return fmt.Sprintf("%s: %s documents, %s chunks, %s calls of %s at most %s at a time, so at least %.1f s of I/O. "+
		"Wall time: %s. Results were %s across the modes.\n",
		m.cmd("pipeline"), grouped(float64(docs)), grouped(float64(calls)), grouped(float64(calls)),
		m.flag("pipeline", "--latency-p50"), grouped(float64(m.pipe[0].Concurrency)), ideal, strings.Join(modes, ", "), same), nil
}
