package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/machine"
	"github.com/ferrylab/ferry/lab/llm"
	"github.com/ferrylab/ferry/lab/pipeline"
)

func TestLLMReportFormats(t *testing.T) {
	st := llm.Stats{Calls: 10, Errors: 2, Retries: 3, Wall: time.Second, LatencyP50: 500 * time.Millisecond,
		LatencyP99: 900 * time.Millisecond, InFlightPeak: 10, SerialEstimate: 6 * time.Second, CallsPerSec: 10}
	ty := llm.Tally{ByKind: map[string]int64{"http_500": 1, "refused": 1}, FirstError: "call 3: boom"}
	r := NewLLM(machine.Info{}, map[string]any{"concurrency": 10}, "http://127.0.0.1:1", true, 10, st, ty)
	for _, tc := range []struct {
		format string
		check  func(t *testing.T, out string)
	}{
		{"text", func(t *testing.T, out string) {
			for _, want := range []string{"in-process mock", "6.00x", "http_500=1 refused=1", "call 3: boom", "2 of 10 calls FAILED"} {
				if !strings.Contains(out, want) {
					t.Errorf("text lacks %q:\n%s", want, out)
				}
			}
		}},
		{"json", func(t *testing.T, out string) {
			var back LLM
			if err := json.Unmarshal([]byte(out), &back); err != nil {
				t.Fatal(err)
			}
			if back.OK != 8 || back.Speedup != 6 || back.P50ms != 500 || back.ErrorKinds["refused"] != 1 {
				t.Errorf("json = %+v", back)
			}
		}},
		{"csv", func(t *testing.T, out string) {
			rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
			if err != nil || len(rows) != 2 || len(rows[0]) != len(rows[1]) {
				t.Errorf("csv = %v, %v", rows, err)
			}
		}},
	} {
		t.Run(tc.format, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteLLM(&b, r, tc.format); err != nil {
				t.Fatal(err)
			}
			tc.check(t, b.String())
		})
	}
}

func TestPipelineReportDigestsAndOverlap(t *testing.T) {
	run := func(mode, digest string) *pipeline.Stats {
		return &pipeline.Stats{Mode: mode, Workers: 2, Wall: 2 * time.Second, Docs: 4, Chunks: 9, Digest: digest,
			CPUActive: time.Second, IOActive: 2 * time.Second, Both: 500 * time.Millisecond,
			Stages: []pipeline.Stage{{Name: "chunk", CPU: true}, {Name: "llm"}, {Name: "merge", CPU: true}}}
	}
	for _, tc := range []struct {
		name      string
		stats     []*pipeline.Stats
		identical bool
	}{
		{"same digests", []*pipeline.Stats{run("serial", "aa"), run("goroutines", "aa")}, true},
		{"different digests", []*pipeline.Stats{run("serial", "aa"), run("goroutines", "bb")}, false},
		{"a mode failed", []*pipeline.Stats{run("serial", "aa"), nil}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewPipeline(machine.Info{}, nil, "http://x", false, 8, tc.stats, make([]error, len(tc.stats)))
			if r.IdenticalResults != tc.identical {
				t.Errorf("identical = %v, want %v", r.IdenticalResults, tc.identical)
			}
			if got := r.Runs[0].Overlap; got != 0.5 {
				t.Errorf("overlap = %v, want 0.5 (0.5 s both / min(1 s, 2 s))", got)
			}
			if r.Runs[0].Stages[1].Kind != "io" || r.Runs[0].Stages[0].Kind != "cpu" {
				t.Errorf("stage kinds = %+v", r.Runs[0].Stages)
			}
			for _, f := range Formats {
				var b bytes.Buffer
				if err := WritePipeline(&b, r, f); err != nil || b.Len() == 0 {
					t.Errorf("%s: %v", f, err)
				}
			}
		})
	}
}

// flops counts 1e9 FLOPs per document.
type flops struct{}

func (flops) FLOPs(docs int) float64 { return 1e9 * float64(docs) }

func TestGFLOPsColumn(t *testing.T) {
	stats := []*coordinator.Stats{
		{Mode: "serial", Workers: 1, Wall: 2 * time.Second, Docs: 10},
		{Mode: "goroutines", Workers: 2, Wall: time.Second, Docs: 10},
	}
	r := New(machine.Info{}, nil, stats, nil)
	var b bytes.Buffer
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "GFLOP/s") {
		t.Errorf("GFLOP/s column without a Flopper:\n%s", b.String())
	}
	r.SetGFLOPs(flops{})
	if got, want := r.Modes[0].GFLOPs, 5.0; got != want {
		t.Errorf("serial GFLOP/s = %v, want %v", got, want)
	}
	b.Reset()
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "GFLOP/s") || !strings.Contains(b.String(), "10.00") || !strings.Contains(b.String(), "5.00") {
		t.Errorf("text lacks GFLOP/s figures:\n%s", b.String())
	}
}
