package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/machine"
	"github.com/ferrylab/ferry/lab/floor"
)

func TestTransportReport(t *testing.T) {
	p := floor.Point{Bytes: 1 << 20, BatchBytes: 1<<20 + 9, ResultBytes: 1<<20 + 12,
		Raw:   floor.Sample{P50: 4 * time.Millisecond, P99: 9 * time.Millisecond, N: 200},
		Ferry: floor.Sample{P50: 6 * time.Millisecond, P99: 12 * time.Millisecond, N: 200}}
	p.Stages[coordinator.StageEncode] = 150 * time.Microsecond
	r := NewTransport(machine.Info{}, map[string]any{"codec": "packed"}, []floor.Point{{Bytes: 64}, p})
	if got := r.Points[1]; got.Ratio != 1.5 || got.RawP50us != 4000 || got.FerryP99 != 12000 || got.Stages["encode"] != 150 || got.Roundtrip != 200 {
		t.Errorf("point = %+v", got)
	}
	if r.Points[0].Ratio != 0 {
		t.Errorf("an unmeasured point has ratio %v, want 0", r.Points[0].Ratio)
	}
	var text, js, csv bytes.Buffer
	for f, w := range map[string]*bytes.Buffer{"text": &text, "json": &js, "csv": &csv} {
		if err := WriteTransport(w, r, f); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if s := text.String(); !strings.Contains(s, "1 MiB") || !strings.Contains(s, "1.50x") || !strings.Contains(s, "64 B") {
		t.Errorf("text report:\n%s", s)
	}
	var back Transport
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Schema != TransportSchema || back.Points[1].Ratio != 1.5 {
		t.Errorf("json report %v: %s", err, js.String())
	}
	if !strings.HasPrefix(csv.String(), "bytes,raw_p50_us,raw_p99_us,ferry_p50_us,ferry_p99_us,ratio,") {
		t.Errorf("csv header: %s", csv.String())
	}
	if err := WriteTransport(&text, r, "xml"); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int]string{64: "64 B", 1023: "1023 B", 1024: "1 KiB", 95_000: "92.8 KiB", 4 << 20: "4 MiB", 3<<20 + 1: "3.0 MiB"} {
		if got := size(n); got != want {
			t.Errorf("size(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestTransportReportPythonColumns(t *testing.T) {
	p := floor.Point{Bytes: 64,
		Raw:    floor.Sample{P50: 100 * time.Microsecond, N: 10},
		Ferry:  floor.Sample{P50: 120 * time.Microsecond, N: 10},
		Python: floor.Sample{P50: 480 * time.Microsecond, P99: 600 * time.Microsecond, N: 10}}
	r := NewTransport(machine.Info{}, map[string]any{"python_version": "3.11.7"}, []floor.Point{p})
	if got := r.Points[0]; got.PythonP50us != 480 || got.PythonP99us != 600 || got.PythonRatio != 0.25 {
		t.Errorf("point = %+v, want python 480/600 us and ferry_over_python 0.25", got)
	}
	var text bytes.Buffer
	if err := WriteTransport(&text, r, "text"); err != nil {
		t.Fatal(err)
	}
	if s := text.String(); !strings.Contains(s, "python_p50_us") || !strings.Contains(s, "0.25x") || !strings.Contains(s, "Python 3.11.7") {
		t.Errorf("text report lacks the Python baseline:\n%s", s)
	}
	p.Python = floor.Sample{}
	text.Reset()
	if err := WriteTransport(&text, NewTransport(machine.Info{}, nil, []floor.Point{p}), "text"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text.String(), "python") {
		t.Errorf("text report shows Python columns it did not measure:\n%s", text.String())
	}
}

func TestBoundaryCPUSplitsProcessesCPU(t *testing.T) {
	r := &Report{
		Modes: []Mode{
			{Mode: coordinator.ModeGoroutines, Docs: 100_000, Batches: 1000, CPUus: 10},
			{Mode: coordinator.ModeProcesses, Docs: 100_000, Batches: 1000, CPUus: 15},
		},
		Floor: []FloorPoint{{Bytes: 64}, {Bytes: 95_000, RawCPUus: 400, RawCPUInFlight: 2}},
	}
	var b bytes.Buffer
	writeBoundaryCPU(&b, r)
	for _, want := range []string{"400 us of CPU", "= 4.00 us/doc at 100 docs/batch", "compute 10.0 (goroutines) + NATS floor 4.0 + rest 1.0", "at most 0.71x goroutines"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("boundary CPU lines lack %q:\n%s", want, b.String())
		}
	}
	r.Floor[1].RawCPUus = 0
	b.Reset()
	writeBoundaryCPU(&b, r)
	if b.Len() != 0 {
		t.Errorf("no measured CPU, yet:\n%s", b.String())
	}
}
