package command

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrylab/ferry/report"
)

func TestPipelineModesIdenticalAndOrdered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "summaries.jsonl")
	out, stderr, code := ferry(t, nil, "pipeline", "-q", "--docs", "120", "--doc-words", "300", "--chunk-tokens", "64",
		"--modes", "serial,goroutines,processes", "--workers", "2", "--batch-size", "10",
		"--latency-p50", "5ms", "--concurrency", "64", "--format", "json", "--out", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r report.Pipeline
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out)
	}
	if !r.IdenticalResults || len(r.Runs) != 3 || r.Schema != report.PipelineSchema {
		t.Fatalf("identical %v, %d runs", r.IdenticalResults, len(r.Runs))
	}
	for i, m := range r.Runs {
		if want := []string{"serial", "goroutines", "processes"}[i]; m.Mode != want {
			t.Errorf("run %d mode %q, want %q", i, m.Mode, want)
		}
		if m.Docs != 120 || m.Failed != 0 || m.Chunks <= 120 || m.CallErrors != 0 {
			t.Errorf("%s: docs %d failed %d chunks %d call errors %d", m.Mode, m.Docs, m.Failed, m.Chunks, m.CallErrors)
		}
		if len(m.Stages) != 3 || m.Stages[1].Items != m.Chunks || m.Overlap <= 0 || m.Overlap > 1 {
			t.Errorf("%s: stages %+v overlap %v", m.Mode, m.Stages, m.Overlap)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n := int64(0)
	for sc.Scan() {
		var rec struct {
			Index   int64  `json:"index"`
			Chunks  int    `json:"chunks"`
			Summary string `json:"summary"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Index != n || rec.Chunks < 1 || strings.Count(rec.Summary, "\n") != rec.Chunks-1 {
			t.Fatalf("line %d = %+v", n, rec)
		}
		n++
	}
	if n != 120 {
		t.Errorf("%d lines, want 120", n)
	}
}

func TestPipelineFailedCallsExitOne(t *testing.T) {
	out, stderr, code := ferry(t, nil, "pipeline", "-q", "--docs", "30", "--modes", "goroutines",
		"--latency-p50", "1ms", "--error-rate", "1", "--llm-max-attempts", "1", "--format", "json")
	if code != 1 || !strings.Contains(stderr, "some documents failed: 30 of 30") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	var r report.Pipeline
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out)
	}
	if len(r.Runs) != 1 || r.Runs[0].Failed != 30 || r.Runs[0].ErrorKinds["http_500"] == 0 || r.Runs[0].FirstFail == "" {
		t.Errorf("runs = %+v", r.Runs)
	}
}
