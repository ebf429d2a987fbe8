package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/report"
)

// TestRepeatInterleavesRounds: --repeat 3 runs every mode three times, in
// rounds (A B A B A B), and
// the report carries three rounds per mode, with processes against
// goroutines paired in each, CPU per document included; the table's rows
// are one of the rounds.
func TestRepeatInterleavesRounds(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	var stdout bytes.Buffer
	var order []string
	err := Run(context.Background(), Config{
		Progress: func(mode string, _ int64) (func(int64), func()) {
			order = append(order, mode)
			return func(int64) {}, func() {}
		},
		Job:    coordinator.Config{Workload: "embed", Workers: 2, BatchSize: 50},
		Modes:  []string{coordinator.ModeGoroutines, coordinator.ModeProcesses},
		Input:  Input{Gen: corpus.GenConfig{Seed: 3, Docs: 2000, Words: 40}},
		Fleet:  fleet.Config{Exe: ferryBin},
		Repeat: 3,
		Format: "json",
		Stdout: &stdout,
	})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, stdout.String())
	}
	if got, want := strings.Join(order, " "), "goroutines processes goroutines processes goroutines processes"; got != want {
		t.Errorf("run order %q, want %q (interleaved)", got, want)
	}
	var r report.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout.String())
	}
	if r.Repeats == nil {
		t.Fatal("no repeats in the report")
	}
	if got, want := r.Repeats.Rounds, 3; got != want {
		t.Errorf("rounds = %d, want %d", got, want)
	}
	if got, want := len(r.Modes), 2; got != want {
		t.Fatalf("%d rows, want one per mode (%d)", got, want)
	}
	for _, m := range r.Repeats.Modes {
		if m.N != 3 {
			t.Errorf("%s ran %d rounds, want 3", m.Mode, m.N)
		}
	}
	if len(r.Repeats.Ratios) != 1 || r.Repeats.Ratios[0].Mode != coordinator.ModeProcesses || r.Repeats.Ratios[0].N != 3 {
		t.Fatalf("ratios = %+v, want processes against goroutines in 3 rounds", r.Repeats.Ratios)
	}
	p := r.Repeats.Ratios[0]
	if p.CPUus.Median <= 0 || p.CPUus.Min > p.CPUus.Median || p.CPUus.Max < p.CPUus.Median {
		t.Errorf("cpu ratio = %+v, want a positive median within min..max", p.CPUus)
	}
	if !r.IdenticalResults {
		t.Error("identical results = false, want true")
	}
}

func TestRepeatRejectsNegative(t *testing.T) {
	c := Config{Job: coordinator.Config{Workers: 1, BatchSize: 1}, Modes: []string{"serial"}, Repeat: -1}
	if err := c.Validate(); err == nil {
		t.Error("repeat=-1 validated")
	}
}
