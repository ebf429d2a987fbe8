package report

import (
	"bytes"
	"strings"
	"testing"
)

func TestWriteCPUBreakdown(t *testing.T) {
	parts := []string{"compute", "encode", "ferry"}
	for _, tc := range []struct {
		name    string
		sampled float64 // of the worker, whose clock is 6
		want    []string
	}{
		{"agree", 5.8, []string{
			"coordinator+broker  2.00  2.00  0.00  0.50  1.50  0.00",
			"all  8.00  7.80  5.00  0.50  2.30  0.20",
			"parts sum to 7.80 us/doc sampled (30 samples) vs 8.00 by the clocks, 98%: agree within 10%",
			// the worker's compute, 5 sampled, scaled by its handler's 5.5 by the clock over 5 sampled: 5.5
			"workers' batch handlers: 5.50 us/doc by their threads' CPU clocks, 5.00 sampled (91%)",
			"minor page faults per batch (4 KiB first touches of fresh memory, in copies and zeroing): coordinator+broker 40, worker 1 0",
			"by the clocks alone: 8.00 us/doc = workers' handlers 5.50 (decode, compute, encode, reply) + workers outside them 0.50 (NATS client, runtime, GC) + the other processes 2.00",
			"ferry's own beyond the floor: 0.50 us/doc = clock 8.00 - compute 5.50 (sampled 5.00, scaled by the handlers' thread clocks) - NATS floor 2.00",
			"ferry's own work sampled: 1.20 us/doc (its codecs and bookkeeping, and the copies and allocations its code makes; encode, ferry together 2.80)",
		}},
		{"disagree", 4.0, []string{"parts sum to 6.00 us/doc sampled", "DISAGREE by more than 10%"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &CPUBreakdown{Parts: parts, Compute: "compute", Ferry: []string{"encode", "ferry"}, Batches: 10, Processes: []CPUProcess{
				{Name: "coordinator+broker", ClockUs: 2, SampledUs: 2, Samples: 10, Parts: []float64{0, 0.5, 1.5}, OwnUs: 1.2, Faults: 400},
				{Name: "worker 1", ClockUs: 6, SampledUs: tc.sampled, Samples: 20, Parts: []float64{5, 0, tc.sampled - 5}, HandlerUs: 5.5, HandlerSampledUs: 5},
			}}
			var buf bytes.Buffer
			writeCPUBreakdown(&buf, b, 2)
			got := strings.Join(strings.Fields(buf.String()), " ")
			for _, w := range tc.want {
				if !strings.Contains(got, strings.Join(strings.Fields(w), " ")) {
					t.Errorf("output lacks %q:\n%s", w, buf.String())
				}
			}
		})
	}
}

func TestWriteCPUBreakdownNamesMissing(t *testing.T) {
	var buf bytes.Buffer
	writeCPUBreakdown(&buf, &CPUBreakdown{Parts: []string{"compute"}, Compute: "compute", Missing: 1,
		Processes: []CPUProcess{{Name: "coordinator", ClockUs: 1, SampledUs: 1, Parts: []float64{0}}}}, 0)
	if !strings.Contains(buf.String(), "1 process(es) sent no profile") {
		t.Errorf("a missing worker is not named:\n%s", buf.String())
	}
	buf.Reset()
	writeCPUBreakdown(&buf, nil, 0)
	if buf.Len() != 0 {
		t.Errorf("nil breakdown printed %q", buf.String())
	}
}

// The breakdown follows the boundary CPU line with or without a goroutines run.
func TestBoundaryCPUPrintsBreakdownWithoutGoroutines(t *testing.T) {
	r := &Report{
		Modes: []Mode{{Mode: "processes", Docs: 1000, Batches: 10, CPUus: 10}},
		Floor: []FloorPoint{{Bytes: 64}, {Bytes: 4096, RawCPUus: 200, RawCPUInFlight: 2}},
		CPUBreakdown: &CPUBreakdown{Parts: []string{"compute"}, Compute: "compute",
			Processes: []CPUProcess{{Name: "worker 1", ClockUs: 10, SampledUs: 9, Parts: []float64{9}}}},
	}
	var buf bytes.Buffer
	writeBoundaryCPU(&buf, r)
	for _, want := range []string{"boundary CPU:", "CPU per doc by process and part", "NATS floor 2.00"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, buf.String())
		}
	}
}
