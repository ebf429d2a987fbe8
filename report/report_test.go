package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/machine"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func sample() *Report {
	serial := &coordinator.Stats{Mode: "serial", Workers: 1, Wall: 2 * time.Second, Docs: 1000, TextBytes: 360_000, Batches: 10,
		Busy: map[string]float64{"serial-0": 0.98}, Digest: "abc"}
	serial.Stages[coordinator.StageCompute] = coordinator.Quantiles{P50: 190 * time.Millisecond, P99: 210 * time.Millisecond, Mean: 195 * time.Millisecond, N: 10}
	procs := &coordinator.Stats{Mode: "processes", Workers: 2, Wall: 1250 * time.Millisecond, Docs: 1000, TextBytes: 360_000, Batches: 10,
		BytesOut: 370_000, BytesIn: 1_540_000, Retries: 1, Forged: 2, Busy: map[string]float64{"w1": 0.9, "w2": 0.8}, Digest: "abc",
		CPU: 16 * time.Millisecond}
	for st, us := range []time.Duration{40, 300, 20, 190_000, 30, 60} {
		procs.Stages[st] = coordinator.Quantiles{P50: us * time.Microsecond, P99: 2 * us * time.Microsecond, Mean: us * time.Microsecond, N: 10}
	}
	procs.Stages[coordinator.StageQueue] = coordinator.Quantiles{P50: 90_000 * time.Microsecond, P99: 180_000 * time.Microsecond, Mean: 95_000 * time.Microsecond, N: 10}
	m := machine.Info{GoVersion: "go1.26.8", GOOS: "linux", GOARCH: "amd64", NumCPU: 2, GOMAXPROCS: 2, NATSServer: "2.15.2"}
	r := New(m, map[string]any{"batch_size": 100, "workload": "embed"}, []*coordinator.Stats{serial, procs, nil}, []error{nil, nil, errors.New("gil: interrupted")})
	r.Floor = []FloorPoint{
		{Bytes: 64, RawP50us: 50, RawP99us: 90, FerryP50: 60, FerryP99: 120, Ratio: 1.2, Roundtrip: 500},
		{Bytes: 95_000, RawP50us: 300, RawP99us: 900, FerryP50: 345, FerryP99: 1000, Ratio: 1.15, Roundtrip: 500},
	}
	return r
}

func TestDerivedFigures(t *testing.T) {
	r := sample()
	p := r.Modes[1]
	if got, want := p.Speedup, 1.6; got != want {
		t.Errorf("speedup = %v, want %v", got, want)
	}
	if got, want := p.Efficiency, 0.8; got != want {
		t.Errorf("efficiency = %v, want %v", got, want)
	}
	if got, want := p.BusyMean, 0.85; got < want-1e-9 || got > want+1e-9 {
		t.Errorf("busy = %v, want %v", got, want)
	}
	if r.IdenticalResults {
		t.Error("a failed mode must make identical_results false")
	}
	if got, want := p.CPUus, 16.0; got != want {
		t.Errorf("cpu_us_per_doc = %v, want %v (16 ms over 1,000 documents)", got, want)
	}
	if got := r.Modes[0].CPUus; got != 0 {
		t.Errorf("cpu_us_per_doc = %v for a mode whose CPU was not measured, want 0", got)
	}
}

func TestGolden(t *testing.T) {
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, sample(), format); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "report."+format)
			if *update {
				os.WriteFile(path, buf.Bytes(), 0o644)
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./report -update)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("%s output changed; got:\n%s\nwant:\n%s", format, buf.Bytes(), want)
			}
		})
	}
}

// TestGoldenWide: --wide prints every column, the table the narrow one
// leaves out of the default.
func TestGoldenWide(t *testing.T) {
	r := sample()
	r.Wide = true
	var buf bytes.Buffer
	if err := Write(&buf, r, "text"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "report.wide.text")
	if *update {
		os.WriteFile(path, buf.Bytes(), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("wide output changed; got:\n%s\nwant:\n%s", buf.Bytes(), want)
	}
}

// TestNarrowTableFits: the default table fits a 100-column terminal and
// has at most 8 columns; the wide one has them all.
func TestNarrowTableFits(t *testing.T) {
	r := sample()
	var buf bytes.Buffer
	if err := writeModes(&buf, r); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	for _, l := range lines {
		if len(l) > 100 {
			t.Errorf("narrow table line is %d characters, want <= 100: %q", len(l), l)
		}
	}
	if got := len(strings.Fields(lines[0])); got > 8 {
		t.Errorf("narrow table has %d columns, want <= 8: %q", got, lines[0])
	}
	r.Wide = true
	buf.Reset()
	writeModes(&buf, r)
	if got, want := len(strings.Fields(strings.SplitN(buf.String(), "\n", 2)[0])), 15; got != want {
		t.Errorf("wide table has %d columns, want %d", got, want)
	}
}

func TestJSONSchemaKeys(t *testing.T) {
	var buf bytes.Buffer
	Write(&buf, sample(), "json")
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema", "config", "manifest", "modes", "identical_results"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	mode := m["modes"].([]any)[1].(map[string]any)
	for _, k := range []string{"mode", "wall_s", "docs_per_s", "speedup", "efficiency", "batches", "bytes_out", "bytes_in", "stages", "busy_mean", "forged_discarded"} {
		if _, ok := mode[k]; !ok {
			t.Errorf("mode lacks %q", k)
		}
	}
	if _, ok := mode["stages"].(map[string]any)["transport"].(map[string]any)["p99_us"]; !ok {
		t.Error("stages.transport.p99_us missing")
	}
}

// TestVerdictNamesFailedModes: a mode that failed cannot be compared, so
// the verdict says n/a and names it instead of "yes".
func TestVerdictNamesFailedModes(t *testing.T) {
	ok := &coordinator.Stats{Mode: "serial", Digest: "d1"}
	failed := &coordinator.Stats{Mode: "processes", Digest: "d1"}
	for _, tt := range []struct {
		name  string
		stats []*coordinator.Stats
		errs  []error
		want  string
	}{
		{"all ran", []*coordinator.Stats{ok, failed}, []error{nil, nil}, "identical results across modes: yes"},
		{"one failed", []*coordinator.Stats{ok, failed}, []error{nil, errors.New("no reply in time")}, "identical results across modes: n/a (failed: processes)"},
		{"only mode failed", []*coordinator.Stats{failed}, []error{errors.New("x")}, "identical results across modes: n/a (failed: processes)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := New(machine.Info{}, nil, tt.stats, tt.errs)
			if got := r.Verdict(); got != tt.want {
				t.Errorf("verdict = %q, want %q", got, tt.want)
			}
		})
	}
}
