package report

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/machine"
)

// round builds one round's stats: goroutines then processes, docs/s from
// walls, CPU per document in microseconds.
func round(gWall, pWall time.Duration, gCPUus, pCPUus int) []*coordinator.Stats {
	const docs = 1000
	g := &coordinator.Stats{Mode: "goroutines", Docs: docs, Wall: gWall, CPU: time.Duration(gCPUus*docs) * time.Microsecond, Digest: "d"}
	p := &coordinator.Stats{Mode: "processes", Docs: docs, Wall: pWall, CPU: time.Duration(pCPUus*docs) * time.Microsecond, Digest: "d"}
	return []*coordinator.Stats{g, p}
}

// TestRepeatsPairsByRound: ratios are taken within a round, so a round
// where the machine was slow for both modes does not move the ratio, and
// the median and range come out of the per-round ratios.
func TestRepeatsPairsByRound(t *testing.T) {
	rounds := [][]*coordinator.Stats{
		round(100*time.Millisecond, 200*time.Millisecond, 10, 12), // ratio 0.5, cpu 1.2
		round(300*time.Millisecond, 600*time.Millisecond, 10, 13), // a slow round: ratio still 0.5
		round(100*time.Millisecond, 160*time.Millisecond, 10, 11), // 0.625, 1.1
	}
	r := NewRepeats(rounds)
	if got, want := r.Rounds, 3; got != want {
		t.Fatalf("rounds = %d, want %d", got, want)
	}
	if got, want := len(r.Ratios), 1; got != want {
		t.Fatalf("%d ratios, want %d (processes against goroutines)", got, want)
	}
	p := r.Ratios[0]
	if p.Mode != "processes" || p.Baseline != "goroutines" || p.N != 3 {
		t.Errorf("ratio = %+v, want processes over goroutines in 3 rounds", p)
	}
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	if !near(p.DocsPerS.Median, 0.5) || !near(p.DocsPerS.Min, 0.5) || !near(p.DocsPerS.Max, 0.625) {
		t.Errorf("docs/s ratio = %+v, want median 0.5, 0.5..0.625", p.DocsPerS)
	}
	if !near(p.CPUus.Median, 1.2) || !near(p.CPUus.Min, 1.1) || !near(p.CPUus.Max, 1.3) {
		t.Errorf("cpu ratio = %+v, want median 1.2, 1.1..1.3", p.CPUus)
	}
	if got, want := r.Modes[0].DocsPerS.Median, 10000.0; !near(got, want) {
		t.Errorf("goroutines median docs/s = %v, want %v", got, want)
	}
	if got, want := r.Confidence, 0.75; !near(got, want) {
		t.Errorf("confidence = %v, want %v for 3 rounds", got, want)
	}
}

// TestRepeatsSkipsFailedRounds: a round where a mode failed pairs nothing.
func TestRepeatsSkipsFailedRounds(t *testing.T) {
	bad := round(100*time.Millisecond, 200*time.Millisecond, 10, 12)
	bad[1] = nil
	r := NewRepeats([][]*coordinator.Stats{round(100*time.Millisecond, 200*time.Millisecond, 10, 12), bad})
	if got, want := r.Ratios[0].N, 1; got != want {
		t.Errorf("paired rounds = %d, want %d", got, want)
	}
	if got, want := r.Modes[1].N, 1; got != want {
		t.Errorf("processes rounds = %d, want %d", got, want)
	}
}

func TestMedianRun(t *testing.T) {
	runs := []*coordinator.Stats{
		{Docs: 100, Wall: 3 * time.Second},
		nil,
		{Docs: 100, Wall: 1 * time.Second},
		{Docs: 100, Wall: 2 * time.Second},
	}
	if got, want := MedianRun(runs), 3; got != want {
		t.Errorf("median run = %d, want %d (the 50 docs/s one)", got, want)
	}
	if got := MedianRun([]*coordinator.Stats{nil}); got != -1 {
		t.Errorf("median of no runs = %d, want -1", got)
	}
}

// TestRepeatsRendered: text prints the paired ratio with its range, JSON
// carries it under repeats.
func TestRepeatsRendered(t *testing.T) {
	rounds := [][]*coordinator.Stats{round(100*time.Millisecond, 200*time.Millisecond, 10, 12), round(100*time.Millisecond, 150*time.Millisecond, 10, 11)}
	r := New(machine.Info{}, nil, rounds[0], nil)
	r.Repeats = NewRepeats(rounds)
	var buf bytes.Buffer
	if err := Write(&buf, r, "text"); err != nil {
		t.Fatal(err)
	}
	if want := "processes / goroutines, paired by round: docs/s 0.50x (0.50..0.67, spread 33%), cpu_us/doc 1.10x (1.10..1.20, spread 9%)"; !strings.Contains(buf.String(), want) {
		t.Errorf("text lacks %q:\n%s", want, buf.String())
	}
	buf.Reset()
	Write(&buf, r, "json")
	var m struct {
		Repeats struct {
			Rounds int `json:"rounds"`
			Ratios []struct {
				CPU struct {
					Median float64 `json:"median"`
				} `json:"cpu_us_per_doc"`
			} `json:"ratios"`
		} `json:"repeats"`
	}
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m.Repeats.Rounds != 2 || len(m.Repeats.Ratios) != 1 || math.Abs(m.Repeats.Ratios[0].CPU.Median-1.1) > 1e-9 {
		t.Errorf("JSON repeats = %+v, want 2 rounds and a cpu ratio of 1.1", m.Repeats)
	}
}

// TestRepeatsCostRatioIgnoresANoisyRound: a round where noise added CPU to
// one side moves that round's ratio (and the median of three, when two
// rounds are hit on different sides), never the ratio of each mode's least.
func TestRepeatsCostRatioIgnoresANoisyRound(t *testing.T) {
	rounds := [][]*coordinator.Stats{
		round(100*time.Millisecond, 200*time.Millisecond, 10, 15),
		round(100*time.Millisecond, 200*time.Millisecond, 16, 15), // goroutines hit: 0.94
		round(100*time.Millisecond, 200*time.Millisecond, 10, 22), // processes hit: 2.2
	}
	p := NewRepeats(rounds).Ratios[0]
	if math.Abs(p.CPULeast-1.5) > 1e-9 {
		t.Errorf("cost ratio = %v, want 1.5 (15 over 10, the least of each)", p.CPULeast)
	}
	if math.Abs(p.CPUus.Median-1.5) > 1e-9 || p.CPUus.Min > 0.95 || p.CPUus.Max < 2.1 {
		t.Errorf("per-round ratios = %+v, want median 1.5 within 0.94..2.2", p.CPUus)
	}
	// The baseline need not come first.
	for i := range rounds {
		rounds[i][0], rounds[i][1] = rounds[i][1], rounds[i][0]
	}
	if q := NewRepeats(rounds).Ratios[0]; math.Abs(q.CPULeast-1.5) > 1e-9 {
		t.Errorf("baseline second: cost ratio = %v, want 1.5", q.CPULeast)
	}
	var b bytes.Buffer
	writeRepeats(&b, NewRepeats(rounds))
	if !strings.Contains(b.String(), "cost, least cpu_us/doc over least: 1.50x") {
		t.Errorf("rendered repeats lack the cost ratio:\n%s", b.String())
	}
}
