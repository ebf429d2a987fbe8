package figures

import (
	"fmt"
	"math"
	"regexp"
	"strings"
)

// The overhead lab (docs/lab.md): sweeps, break-even, recommend, --batch
// auto, diff and memory.
var labSet = Set{Name: "lab", Cmds: []Cmd{
	{Key: "sweep-default", Text: true, Args: []string{"sweep", "--workload", "spin", "--spin-cost", "100us"},
		Quick: []string{"sweep", "--workload", "spin", "--spin-cost", "100us", "--repeats", "1", "--point-time", "100ms"}},
	{Key: "sweep-1w", Once: true,
		Args:  sweepArgs("1", "1,2,4,6,8,10,12,16,20,24,32,64,256", "5", "400ms"),
		Quick: sweepArgs("1", "1,2,4,8,16,64,256", "2", "100ms")},
	{Key: "sweep-2w", Once: true,
		Args:  sweepArgs("2", "1,4,16,32,64,128,256,512,1024", "5", "500ms"),
		Quick: sweepArgs("2", "1,4,16,64,256,1024", "2", "100ms")},
	{Key: "recommend-embed", Text: true, Args: []string{"recommend", "-q", "--workload", "embed"}},
	{Key: "recommend-spin", Text: true, Args: []string{"recommend", "-q", "--workload", "spin", "--spin-cost", "100us"}},
	{Key: "auto-run", Text: true, Args: autoRunArgs("50000"), Quick: autoRunArgs("10000")},
	{Key: "auto-embed", Once: true,
		Args:  []string{"sweep", "-q", "--workload", "embed", "--worker-counts", "2", "--batch-sizes", "16,64,256,1024,auto", "--repeats", "5", "--point-time", "1s"},
		Quick: []string{"sweep", "-q", "--workload", "embed", "--worker-counts", "2", "--batch-sizes", "16,64,256,1024,auto", "--repeats", "2", "--point-time", "200ms"}},
	{Key: "auto-spin", Once: true,
		Args:  []string{"sweep", "-q", "--workload", "spin", "--spin-cost", "100us", "--worker-counts", "2", "--batch-sizes", "1,4,16,64,256,1024,auto", "--repeats", "5", "--point-time", "500ms"},
		Quick: []string{"sweep", "-q", "--workload", "spin", "--spin-cost", "100us", "--worker-counts", "2", "--batch-sizes", "1,4,16,64,256,1024,auto", "--repeats", "2", "--point-time", "100ms"}},
	{Key: "diff-a", Once: true, Args: []string{"sweep", "-q", "--workload", "embed", "--worker-counts", "2", "--batch-sizes", "1,16,256", "--records", "inflight2.jsonl"}},
	{Key: "diff-b", Once: true, Args: []string{"sweep", "-q", "--workload", "embed", "--worker-counts", "2", "--batch-sizes", "1,16,256", "--inflight", "1", "--records", "inflight1.jsonl"}},
	{Key: "diff", Text: true, Args: []string{"diff", "inflight2.jsonl", "inflight1.jsonl"}},
	{Key: "memory", Go: true, Env: []string{"FERRY_MEMTEST=1"}, Args: []string{"test", "-count=1", "-run", "TestMillionDocumentsMemory", "-v", "./internal/command"}},
}}

func sweepArgs(workers, sizes, repeats, pointTime string) []string {
	return []string{"sweep", "-q", "--workload", "spin", "--spin-cost", "100us", "--worker-counts", workers,
		"--batch-sizes", sizes, "--repeats", repeats, "--point-time", pointTime}
}

func autoRunArgs(docs string) []string {
	return []string{"run", "-q", "--batch", "auto", "--modes", "goroutines,processes", "--workload", "embed", "--docs", docs}
}

// sweepReport is what the figures read of ferry.sweep JSON.
type sweepReport struct {
	Sweep struct {
		Repeats int `json:"repeats"`
		Fits    []struct {
			Series string  `json:"series"`
			Mode   string  `json:"mode"`
			AUs    float64 `json:"a_us"`
			CUs    float64 `json:"c_us"`
			R2     float64 `json:"r2"`
			N      int     `json:"n"`
		} `json:"fits"`
		BreakEvens []struct {
			Series      string     `json:"series"`
			Predicted   float64    `json:"predicted"`
			Never       bool       `json:"never"`
			Observed    float64    `json:"observed"`
			Recommended int        `json:"recommended"`
			PredictedCI [2]float64 `json:"predicted_ci"`
			ObservedCI  [2]float64 `json:"observed_ci"`
		} `json:"break_evens"`
		Autos []struct {
			Group     string     `json:"group"`
			DocsPerS  float64    `json:"docs_per_s"`
			MeanBatch float64    `json:"mean_batch"`
			BestBatch int        `json:"best_batch"`
			BestDocsS float64    `json:"best_docs_per_s"`
			Ratio     float64    `json:"ratio"`
			RatioCI   [2]float64 `json:"ratio_ci"`
		} `json:"auto"`
	} `json:"sweep"`
}

func loadSweep(d *Data, key string) (*sweepReport, string, error) {
	rs, err := decode[sweepReport](d.Of(key))
	if err != nil {
		return nil, "", err
	}
	return &rs[0], d.Of(key)[0].Command, nil
}

// size is a break-even batch size, "never" or "not reached".
func size(x float64, never bool) string {
	switch {
	case never:
		return "never"
	case x <= 0 || math.IsNaN(x) || math.IsInf(x, 0):
		return "not reached"
	}
	return fixed(1)(x)
}

func interval(ci [2]float64) string {
	f := func(x float64) string {
		if math.IsInf(x, 0) || x <= 0 {
			return "inf"
		}
		return fmt.Sprintf("%.0f", x)
	}
	return f(ci[0]) + ".." + f(ci[1])
}

// renderLabBreakEven is the fits and break-evens of the two spin sweeps.
func renderLabBreakEven(d *Data) (string, error) {
	var b strings.Builder
	for _, key := range []string{"sweep-1w", "sweep-2w"} {
		s, cmd, err := loadSweep(d, key)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "`%s`:\n\n| series | mode | a_us | c_us | R2 | sizes |\n|---|---|--:|--:|--:|--:|\n", cmd)
		for _, f := range s.Sweep.Fits {
			fmt.Fprintf(&b, "| %s | %s | %.1f | %.2f | %.4f | %d |\n", f.Series, f.Mode, f.AUs, f.CUs, f.R2, f.N)
		}
		b.WriteString("\n| series | predicted | 90% interval | observed | 90% interval | predicted/observed | recommended (5% overhead) |\n|---|--:|--:|--:|--:|--:|--:|\n")
		for _, be := range s.Sweep.BreakEvens {
			po := "-"
			if !be.Never && be.Predicted > 0 && be.Observed > 0 {
				po = fmt.Sprintf("%.2f (%s)", be.Predicted/be.Observed, signedPercent(be.Predicted/be.Observed-1))
			}
			rec := "none reaches it"
			if be.Recommended > 0 {
				rec = fmt.Sprintf("%d", be.Recommended)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", be.Series, size(be.Predicted, be.Never), interval(be.PredictedCI),
				size(be.Observed, false), interval(be.ObservedCI), po, rec)
		}
		b.WriteString("\n")
	}
	return b.String(), nil
}

// renderLabAuto is --batch auto against the best fixed size, per sweep.
func renderLabAuto(d *Data) (string, error) {
	var b strings.Builder
	b.WriteString("| sweep | group | auto docs/s | mean batch | best fixed | best docs/s | auto/best | 90% interval |\n|---|---|--:|--:|--:|--:|--:|--:|\n")
	for _, key := range []string{"auto-embed", "auto-spin"} {
		s, cmd, err := loadSweep(d, key)
		if err != nil {
			return "", err
		}
		for _, a := range s.Sweep.Autos {
			fmt.Fprintf(&b, "| `%s` | %s | %s | %.1f | %d | %s | %s | %.2f..%.2f |\n", cmd, a.Group, grouped(a.DocsPerS), a.MeanBatch,
				a.BestBatch, grouped(a.BestDocsS), times(a.Ratio), a.RatioCI[0], a.RatioCI[1])
		}
	}
	return b.String(), nil
}

var memLine = regexp.MustCompile(`peak RSS of ferry run \(coordinator \+ embedded broker\), batch=(\S+): ([\d.]+) MB`)

// memory is the memory test's peak RSS per batch setting.
func memory(d *Data) (map[string]string, string, error) {
	rs := d.Of("memory")
	if len(rs) == 0 {
		return nil, "", fmt.Errorf("no memory run")
	}
	out := map[string]string{}
	for _, m := range memLine.FindAllStringSubmatch(rs[0].Text, -1) {
		out[m[1]] = m[2] + " MB"
	}
	if len(out) == 0 {
		return nil, "", fmt.Errorf("memory: no %q line in the test's output", "peak RSS of ferry run")
	}
	return out, rs[0].Command, nil
}

func renderLabMemory(d *Data) (string, error) {
	mem, cmd, err := memory(d)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "`%s` (it asserts under 200 MB):\n\n| command | peak RSS |\n| --- | --- |\n", cmd)
	fmt.Fprintf(&b, "| `ferry run -q --modes processes --docs 1000000 --batch fixed --out vecs.npy` (coordinator and embedded broker in one process) | %s |\n", orDash(mem["fixed"]))
	fmt.Fprintf(&b, "| the same with `--batch auto` | %s |\n", orDash(mem["auto"]))
	return b.String(), nil
}

func renderLabGoals(d *Data) (string, error) {
	var b strings.Builder
	b.WriteString("| goal | measured | verdict |\n| --- | --- | --- |\n")
	if rs := d.Of("sweep-default"); len(rs) > 0 {
		fmt.Fprintf(&b, "| default sweep under 2 minutes | `%s`: %.1f s | %s |\n", rs[0].Command, rs[0].WallS, verdict(rs[0].WallS < 120))
	}
	if mem, _, err := memory(d); err == nil {
		worst := 0.0
		for _, v := range mem {
			var x float64
			fmt.Sscanf(v, "%f", &x)
			worst = math.Max(worst, x)
		}
		fmt.Fprintf(&b, "| 1,000,000-document embed with `--out` under 200 MB peak RSS | %s fixed, %s with `--batch auto` | %s |\n",
			orDash(mem["fixed"]), orDash(mem["auto"]), verdict(worst > 0 && worst < 200))
	}
	var autos []string
	least := math.Inf(1)
	for _, key := range []string{"auto-embed", "auto-spin"} {
		s, _, err := loadSweep(d, key)
		if err != nil {
			return "", err
		}
		for _, a := range s.Sweep.Autos {
			autos = append(autos, fmt.Sprintf("%s %s [%.2f..%.2f]", a.Group, times(a.Ratio), a.RatioCI[0], a.RatioCI[1]))
			least = math.Min(least, a.Ratio)
		}
	}
	fmt.Fprintf(&b, "| `--batch auto` at least 0.95x the best fixed batch size, embed and spin | %s | %s |\n", strings.Join(autos, "; "), verdict(least >= 0.95))
	var bes []string
	ok := true
	for _, key := range []string{"sweep-1w", "sweep-2w"} {
		s, _, err := loadSweep(d, key)
		if err != nil {
			return "", err
		}
		for _, be := range s.Sweep.BreakEvens {
			if be.Never || be.Predicted <= 0 || be.Observed <= 0 {
				bes = append(bes, fmt.Sprintf("%s: predicted %s, observed %s", be.Series, size(be.Predicted, be.Never), size(be.Observed, false)))
				ok = false
				continue
			}
			e := be.Predicted/be.Observed - 1
			bes = append(bes, fmt.Sprintf("%s: %s", be.Series, signedPercent(e)))
			ok = ok && math.Abs(e) <= 0.25
		}
	}
	fmt.Fprintf(&b, "| spin 100 us: fitted break-even within 25%% of observed | %s | %s |\n", strings.Join(bes, "; "), verdict(ok))
	b.WriteString("| report renders in headless Chromium with no console errors | `TestHTMLRendersInChromiumWithoutConsoleErrors` (not run by `scripts/figures.sh`: a test, not a figure) | - |\n")
	return b.String(), nil
}

// renderLabDiff is the two sweeps' commands and the diff of their records.
func renderLabDiff(d *Data) (string, error) {
	out, err := sample(d, "diff")
	if err != nil {
		return "", err
	}
	var cmds strings.Builder
	for _, k := range []string{"diff-a", "diff-b"} {
		rs := d.Of(k)
		if len(rs) == 0 {
			return "", fmt.Errorf("no %s run", k)
		}
		fmt.Fprintf(&cmds, "$ %s\n", rs[0].Command)
	}
	return strings.Replace(out, "```\n", "```\n"+cmds.String(), 1), nil
}
