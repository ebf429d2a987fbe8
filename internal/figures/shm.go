package figures

import (
	"fmt"
	"strings"
)

// docs/shm.md: processes over NATS against processes over shared memory
// (--data-plane shm), on embed and on noop (the boundary alone), and bench
// transport's shm columns. The runs repeat inside (--repeat, 3 rounds by
// default), so they run once.
var shmSet = Set{Name: "shm", Cmds: []Cmd{
	{Key: "shm-embed", Once: true,
		Args:  []string{"run", "-q", "--modes", "goroutines,processes", "--data-plane", "nats,shm"},
		Quick: []string{"run", "-q", "--modes", "goroutines,processes", "--data-plane", "nats,shm", "--docs", "20000"}},
	{Key: "shm-noop", Once: true,
		Args:  []string{"run", "-q", "--workload", "noop", "--modes", "goroutines,processes", "--data-plane", "nats,shm"},
		Quick: []string{"run", "-q", "--workload", "noop", "--modes", "goroutines,processes", "--data-plane", "nats,shm", "--docs", "20000"}},
	{Key: "shm-bench", Once: true,
		Args:  []string{"bench", "transport"},
		Quick: []string{"bench", "transport", "--sizes", "64,64KiB,1MiB", "--roundtrips", "50", "--python", "off"}},
}}

// renderShmSplit is the data plane and boundary split lines of the embed run.
func renderShmSplit(d *Data) (string, error) {
	text, cmd, err := runText(d, "shm-embed")
	if err != nil {
		return "", err
	}
	lines := append(containing(text, "data plane"), containing(text, "boundary split")...)
	if len(lines) == 0 {
		return "", fmt.Errorf("shm-embed: no data plane or boundary split line")
	}
	return codeBlock(cmd+"  # two of its lines", lines), nil
}

// repeatsReport is what the shm pages read of a run's repeats section.
type repeatsReport struct {
	Repeats struct {
		Rounds int `json:"rounds"`
		Modes  []struct {
			Mode string `json:"mode"`
			N    int    `json:"n"`
			Docs span   `json:"docs_per_s"`
			CPU  span   `json:"cpu_us_per_doc"`
		} `json:"modes"`
		Ratios []struct {
			Mode     string `json:"mode"`
			Baseline string `json:"baseline"`
			Docs     span   `json:"docs_per_s"`
			CPU      span   `json:"cpu_us_per_doc"`
		} `json:"ratios"`
	} `json:"repeats"`
}

// span is a median and min..max over rounds.
type span struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func (s span) stat() stat { return stat{s.Median, s.Min, s.Max} }

// renderShmTable is one run's modes over its rounds: docs/s, CPU per
// document, and goroutines' CPU per document over the mode's (paired by
// round: what share of goroutines' CPU efficiency the mode reaches).
func renderShmTable(key string, cpuDecimals int) func(*Data) (string, error) {
	return func(d *Data) (string, error) {
		rs, err := decode[repeatsReport](d.Of(key))
		if err != nil {
			return "", fmt.Errorf("%s: %w", key, err)
		}
		r := rs[0].Repeats
		if len(r.Modes) == 0 {
			return "", fmt.Errorf("%s: no repeats in the report", key)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "`%s`, %d rounds, modes interleaved: median [min-max] over the rounds.\n\n", d.Of(key)[0].Command, r.Rounds)
		b.WriteString("| mode | docs/s | cpu_us/doc | goroutines' CPU per doc / the mode's, paired by round |\n|---|---|---|---|\n")
		for _, m := range r.Modes {
			reach := "1.00x (the baseline)"
			for _, x := range r.Ratios {
				if x.Mode == m.Mode && x.Baseline == "goroutines" && x.CPU.Median > 0 && x.CPU.Min > 0 {
					reach = stat{1 / x.CPU.Median, 1 / x.CPU.Max, 1 / x.CPU.Min}.format(times)
				}
			}
			if m.Mode != "goroutines" && reach == "1.00x (the baseline)" {
				reach = "-"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", m.Mode, m.Docs.stat().format(grouped), m.CPU.stat().format(fixed(cpuDecimals)), reach)
		}
		return b.String(), nil
	}
}

var (
	renderShmRuns = renderShmTable("shm-embed", 1)
	renderShmNoop = renderShmTable("shm-noop", 2) // below 1 us: two decimals
)

// benchReport is what the shm page reads of bench transport's JSON.
type benchReport struct {
	Points []struct {
		Bytes    int     `json:"bytes"`
		RawP50   float64 `json:"raw_p50_us"`
		FerryP50 float64 `json:"ferry_p50_us"`
		ShmP50   float64 `json:"shm_p50_us"`
		ShmP99   float64 `json:"shm_p99_us"`
		ShmRaw   float64 `json:"shm_over_raw"`
	} `json:"points"`
}

// renderShmBench is bench transport's shm columns at 64 B, 64 KiB and 1 MiB.
func renderShmBench(d *Data) (string, error) {
	rs, err := decode[benchReport](d.Of("shm-bench"))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "`%s` (noop batch and result of each size, one in flight):\n\n", d.Of("shm-bench")[0].Command)
	b.WriteString("| bytes | raw NATS echo p50 | ferry over NATS p50 | ferry over shm p50 | ferry over shm p99 | shm / raw |\n|---|---|---|---|---|---|\n")
	us := func(x float64) string { return grouped(x) + " us" }
	n := 0
	for _, size := range []struct {
		bytes int
		label string
	}{{64, "64 B"}, {64 << 10, "64 KiB"}, {1 << 20, "1 MiB"}} {
		for _, p := range rs[0].Points {
			if p.Bytes != size.bytes {
				continue
			}
			if p.ShmP50 <= 0 {
				return "", fmt.Errorf("shm-bench: no shm columns at %s", size.label)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", size.label, us(p.RawP50), us(p.FerryP50), us(p.ShmP50), us(p.ShmP99), times(p.ShmRaw))
			n++
		}
	}
	if n == 0 {
		return "", fmt.Errorf("shm-bench: none of 64 B, 64 KiB, 1 MiB measured")
	}
	return b.String(), nil
}
