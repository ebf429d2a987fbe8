package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ferrylab/ferry/lab/sweep"
)

// TestSweepCPUBreakEven: the sweep's text prints the CPU break-even next
// to throughput's, says why they disagree, and ferry recommend's line
// takes its batch size from CPU.
func TestSweepCPUBreakEven(t *testing.T) {
	be := sweep.BreakEven{Series: "workload=embed/codec=packed/workers=1", Workers: 1, Predicted: 12, Recommended: 13, PredictedCI: [2]float64{10, 15},
		CPU: &sweep.CPUBreakEven{Predicted: 80, Recommended: 85, RecommendedOverhead: 0.049, PredictedCI: [2]float64{70, 95}}, Disagree: true}
	r := &SweepReport{Manifest: Manifest{NumCPU: 2, GOMAXPROCS: 2}, Sweep: &sweep.Result{Repeats: 3, Level: 0.95, Target: 0.05, BreakEvens: []sweep.BreakEven{be}}}
	var buf bytes.Buffer
	if err := WriteSweepText(&buf, r); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"break-even from CPU per document",
		"70..95",
		"85 (4.9%)",
		"disagree beyond their intervals (predicted 12.0 vs 80.0): 1 workers on 2 cores: the idle cores",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("sweep text lacks %q:\n%s", want, out)
		}
	}
	buf.Reset()
	if err := WriteHTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "recommend uses") || !strings.Contains(buf.String(), "<td>85</td>") {
		t.Errorf("HTML lacks the CPU break-even's recommendation (85)")
	}
	if line := Recommendation(be, 0.05); !strings.HasPrefix(line, "batch_size=85 ") || !strings.Contains(line, "throughput break-even 12.0") {
		t.Errorf("recommendation = %q, want batch_size=85 from CPU with throughput's beside it", line)
	}
	be.CPU = nil
	if line := Recommendation(be, 0.05); !strings.HasPrefix(line, "batch_size=13 ") {
		t.Errorf("without CPU: recommendation = %q, want batch_size=13 from throughput", line)
	}
}
