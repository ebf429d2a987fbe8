package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ferrylab/ferry/internal/machine"
	"github.com/ferrylab/ferry/lab/capacity"
)

// capacityResult is a small result with one broker shape, a job and a
// knee series, and one layout.
func capacityResult() *capacity.Result {
	costs := capacity.Costs{Nodes: 1, Coordinator: capacity.Line{AUs: 20, KNsB: 0.8}, Brokers: []capacity.Line{{AUs: 20, KNsB: 1}},
		Workers: capacity.Line{AUs: 30, KNsB: 1.2}, BytesPerDoc: 1900, Cores: 1.9}
	machineLayout := capacity.Layout{Name: "machine", Machine: true, Nodes: 1}
	series := func(name string, compute float64, docs ...float64) capacity.Series {
		s := capacity.Series{Name: name, Prediction: capacity.Predict(costs, machineLayout, capacity.Shape{BatchSize: 100, ComputeUs: compute}, []int{1, 4})}
		for i, w := range []int{1, 4} {
			run := capacity.Sample{Workers: w, DocsPerS: docs[i], Predicted: s.Prediction.Points[i].DocsPerS, CoresBefore: 1.9, Limit: s.Prediction.Points[i].Limit}
			s.Points = append(s.Points, capacity.Measured{Workers: w, Runs: []capacity.Sample{run}, DocsPerS: docs[i], Predicted: run.Predicted,
				Error: run.ErrorRatio(), Limit: run.Limit, Efficiency: docs[i] / (float64(w) * docs[0])})
		}
		return s
	}
	return &capacity.Result{
		Shape: capacity.Shape{BatchSize: 100, ComputeUs: 2000, Emulated: true},
		Brokers: []capacity.Brokers{{Nodes: 1, Costs: costs, Series: []capacity.Series{
			series("job", 2000, 495, 1980), series("knee", 30, 30000, 100000)}}},
		Layouts: []capacity.Prediction{capacity.Predict(costs, capacity.Layout{Name: "coordinator=2,broker=4", Coordinator: 2, Broker: 4, Nodes: 1},
			capacity.Shape{BatchSize: 100, ComputeUs: 2000}, []int{1, 4})},
		Memory: capacity.Memory{Workers: 64, PeakMB: 1900},
	}
}

func TestWriteCapacity(t *testing.T) {
	r := NewCapacity(machine.Info{NumCPU: 2}, map[string]any{"spin_cost": "2ms"}, capacityResult())
	var text bytes.Buffer
	if err := WriteCapacity(&text, r, "text"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"capacity: emulated compute", "validation:", "predicted knee", "coordinator=2,broker=4", "resident memory at 64", "goals"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := WriteCapacity(&js, r, "json"); err != nil {
		t.Fatal(err)
	}
	var back CapacityReport
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Schema != CapacitySchema || len(back.Goals) != 4 {
		t.Fatalf("JSON report: %v, schema %q, %d goals", err, back.Schema, len(back.Goals))
	}
	var page bytes.Buffer
	if err := WriteCapacityHTML(&page, r); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(page.String(), "<svg"); got != 2 { // one validation chart, the layouts
		t.Errorf("HTML has %d charts, want 2", got)
	}
	if err := WriteCapacity(&text, r, "csv"); err == nil {
		t.Error("csv accepted")
	}
}
