package lab

import (
	"testing"
	"time"

	"github.com/ferrylab/ferry/internal/cpuprof"
)

func TestBreakdownReport(t *testing.T) {
	coord := cpuprof.Profile{Name: "coordinator+broker", Clock: 300 * time.Millisecond, Sampled: 250 * time.Millisecond, Samples: 25}
	coord.Parts[cpuprof.Broker] = 150 * time.Millisecond
	coord.Parts[cpuprof.Decode] = 100 * time.Millisecond
	w := cpuprof.Profile{Name: "worker 7", Clock: 500 * time.Millisecond, Sampled: 400 * time.Millisecond, Samples: 40}
	w.Parts[cpuprof.Compute] = 400 * time.Millisecond
	b := breakdownReport([]cpuprof.Profile{coord, w}, 100_000, 2) // two workers, one recording back

	if got, want := b.Missing, 1; got != want {
		t.Errorf("missing = %d, want %d", got, want)
	}
	if got, want := len(b.Parts), int(cpuprof.NumParts); got != want {
		t.Fatalf("%d parts, want %d", got, want)
	}
	if b.Parts[cpuprof.Compute] != b.Compute || b.Parts[cpuprof.Broker] != "broker" {
		t.Errorf("parts %v, compute %q: names out of order", b.Parts, b.Compute)
	}
	for _, tc := range []struct {
		name      string
		row       int
		part      cpuprof.Part
		want      float64 // us/doc
		clock     float64
		sampledUs float64
	}{
		{"coordinator's broker", 0, cpuprof.Broker, 1.5, 3, 2.5},
		{"coordinator's decode", 0, cpuprof.Decode, 1, 3, 2.5},
		{"worker's compute", 1, cpuprof.Compute, 4, 5, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := b.Processes[tc.row]
			if got := p.Parts[tc.part]; got != tc.want {
				t.Errorf("%s = %v us/doc, want %v", tc.part, got, tc.want)
			}
			if p.ClockUs != tc.clock || p.SampledUs != tc.sampledUs {
				t.Errorf("clock, sampled = %v, %v us/doc; want %v, %v", p.ClockUs, p.SampledUs, tc.clock, tc.sampledUs)
			}
		})
	}
}

// A processes run on a local fleet reports the CPU of the coordinator and
// of each worker process, every one's recording back; a sharded run, whose
// coordinators are other processes, reports none.
func TestBreakdownOfAProcessesRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	r := runJob(t, "embed", 1, "")
	b := r.CPUBreakdown
	if b == nil {
		t.Fatal("no CPU breakdown in the report")
	}
	if got, want := len(b.Processes), 3; got != want || b.Missing != 0 {
		t.Fatalf("%d processes (%d missing), want %d: %+v", got, b.Missing, want, b.Processes)
	}
	if got, want := b.Processes[0].Name, "coordinator+broker"; got != want {
		t.Errorf("first process %q, want %q", got, want)
	}
	for _, p := range b.Processes {
		if p.ClockUs <= 0 || len(p.Parts) != len(b.Parts) {
			t.Errorf("%s: clock %v us/doc, %d parts: want CPU and every part", p.Name, p.ClockUs, len(p.Parts))
		}
	}
	if r := runJob(t, "embed", 3, ""); r.CPUBreakdown != nil {
		t.Errorf("sharded run has a breakdown: %+v", r.CPUBreakdown)
	}
}
