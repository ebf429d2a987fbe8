package command

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylab/ferry/internal/poll"
	"github.com/ferrylab/ferry/lab/sweep"
	"github.com/ferrylab/ferry/report"
)

func TestSweepWritesRecordsSummaryAndReport(t *testing.T) {
	dir := t.TempDir()
	records, html := filepath.Join(dir, "runs.csv"), filepath.Join(dir, "sweep.html")
	out, stderr, code := ferry(t, nil, "sweep", "-q", "--workload", "spin", "--spin-cost", "20us", "--worker-counts", "1,2",
		"--batch-sizes", "1,16,auto", "--repeats", "2", "--point-time", "30ms", "--records", records, "--report", html, "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r report.SweepReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("sweep JSON: %v\n%s", err, out)
	}
	if r.Schema != report.SweepSchema || r.Sweep == nil {
		t.Fatalf("schema %q, sweep %v", r.Schema, r.Sweep)
	}
	// goroutines and processes x 2 worker counts x 3 batch sizes x 2 repeats
	if got, want := len(r.Sweep.Records), 24; got != want {
		t.Errorf("records = %d, want %d", got, want)
	}
	for _, rec := range r.Sweep.Records {
		if rec.Error != "" {
			t.Errorf("run %s failed: %s", rec.Key(), rec.Error)
		}
	}
	if len(r.Sweep.BreakEvens) != 2 || len(r.Sweep.Autos) != 4 {
		t.Errorf("break-evens %d, auto comparisons %d; want 2 and 4", len(r.Sweep.BreakEvens), len(r.Sweep.Autos))
	}
	if r.Manifest.GoVersion == "" || r.Manifest.NATSServer == "" || r.Config["workload"] != "spin" {
		t.Errorf("manifest %+v, config %v", r.Manifest, r.Config)
	}
	f, err := os.Open(records)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := sweep.ReadRecords(f)
	if err != nil || len(recs) != 24 {
		t.Errorf("records file: %d records, %v", len(recs), err)
	}
	// --analyze runs nothing and derives the same fits from the file.
	again, stderr, code := ferry(t, nil, "sweep", "--analyze", records, "--format", "json")
	if code != 0 {
		t.Fatalf("--analyze: exit %d: %s", code, stderr)
	}
	var a report.SweepReport
	if err := json.Unmarshal([]byte(again), &a); err != nil {
		t.Fatalf("--analyze JSON: %v\n%s", err, again)
	}
	if len(a.Sweep.Records) != 24 || len(a.Sweep.Fits) != len(r.Sweep.Fits) {
		t.Fatalf("--analyze: %d records, %d fits; want 24 and %d", len(a.Sweep.Records), len(a.Sweep.Fits), len(r.Sweep.Fits))
	}
	for _, f := range r.Sweep.Fits {
		found := false
		for _, g := range a.Sweep.Fits {
			found = found || (g.Group == f.Group && math.Abs(g.AUs-f.AUs) < 1e-6*(1+math.Abs(f.AUs)) && math.Abs(g.CUs-f.CUs) < 1e-6*(1+math.Abs(f.CUs)))
		}
		if !found {
			t.Errorf("--analyze lost or changed the fit %+v", f)
		}
	}
	if _, stderr, code := ferry(t, nil, "sweep", "--analyze", filepath.Join(dir, "missing.jsonl")); code != 2 || !strings.Contains(stderr, "analyze=") {
		t.Errorf("--analyze of a missing file: exit %d, stderr %q; want 2 naming the key", code, stderr)
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(page, []byte("<svg")); n < 4 {
		t.Errorf("report has %d charts, want at least 4", n)
	}
}

func TestSweepTextSummary(t *testing.T) {
	out, stderr, code := ferry(t, nil, "sweep", "-q", "--modes", "goroutines,codec", "--workload", "spin", "--spin-cost", "10us",
		"--worker-counts", "2", "--batch-sizes", "4,32", "--repeats", "1", "--point-time", "20ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"sweep: 4 runs of 4 points", "workers=2", "docs/s", "±IQR", "fit per mode", "goroutines", "codec"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

func TestRecommendPrintsOneLine(t *testing.T) {
	out, stderr, code := ferry(t, nil, "recommend", "-q", "--workload", "spin", "--spin-cost", "50us",
		"--batch-sizes", "1,8,64", "--repeats", "1", "--point-time", "30ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "batch_size=") {
		t.Errorf("recommend printed %q, want one line starting batch_size=", out)
	}
}

func TestSweepInterruptKeepsRecordsAndWorkers(t *testing.T) {
	records := filepath.Join(t.TempDir(), "runs.jsonl")
	cmd := exec.Command(ferryBin, "sweep", "-q", "--workload", "spin", "--spin-cost", "50us", "--worker-counts", "2",
		"--repeats", "50", "--point-time", "50ms", "--records", records)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := func() int {
		b, _ := os.ReadFile(records)
		return bytes.Count(b, []byte("\n"))
	}
	poll.WaitFor(t, 60*time.Second, "three records", func() bool { return lines() >= 3 })
	kids := children(cmd.Process.Pid)
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("exit = %v, want 130; stderr %s", err, stderr.String())
	}
	b, _ := os.ReadFile(records)
	recs, rerr := sweep.ReadRecords(bytes.NewReader(b))
	if rerr != nil || len(recs) < 3 {
		t.Errorf("records after the interrupt: %d, %v", len(recs), rerr)
	}
	if !strings.Contains(stdout.String(), "interrupted: partial") {
		t.Errorf("summary does not say it is partial:\n%s", stdout.String())
	}
	poll.WaitFor(t, 15*time.Second, "workers to exit", func() bool {
		for _, k := range kids {
			if alive(k) {
				return false
			}
		}
		return true
	})
}

func TestDiffCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, thr ...float64) string {
		var b bytes.Buffer
		for i, x := range thr {
			r := sweep.Record{Seq: i, Repeat: i, Point: sweep.Point{Mode: "processes", Workers: 2, BatchSize: 64, Codec: "packed", Workload: "embed"}, DocsPerS: x, BatchUs: 1e6 / x}
			j, _ := json.Marshal(r)
			b.Write(append(j, '\n'))
		}
		p := filepath.Join(dir, name)
		os.WriteFile(p, b.Bytes(), 0o644)
		return p
	}
	a, b := write("a.jsonl", 1000, 1010, 990), write("b.jsonl", 1200, 1190, 1210)
	out, stderr, code := ferry(t, nil, "diff", a, b)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "+20.00% (ranges apart)") || !strings.Contains(out, "workload=embed/codec=packed/workers=2/mode=processes/batch=64") {
		t.Errorf("diff output:\n%s", out)
	}
	_, stderr, code = ferry(t, nil, "diff", a, filepath.Join(dir, "missing.jsonl"))
	if code == 0 || !strings.Contains(stderr, "missing.jsonl") {
		t.Errorf("missing file: exit %d, stderr %q", code, stderr)
	}
}

func TestRunBatchAuto(t *testing.T) {
	out, stderr, code := ferry(t, nil, "run", "-q", "--batch", "auto", "--modes", "serial,goroutines,processes", "--workers", "2",
		"--docs", "3000", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if !r.IdenticalResults {
		t.Error("auto batching changed the results")
	}
	for _, m := range r.Modes {
		if len(m.BatchSizes) == 0 || m.BatchSizes[0].Size != 100 || m.Docs != 3000 {
			t.Errorf("%s: %d docs, sizes %+v; want 3000 docs and a trace starting at batch_size 100", m.Mode, m.Docs, m.BatchSizes)
		}
		// Processes over the embedded broker size on the hop's measured
		// CPU; the in-process modes have no hop and use stage times.
		if hop := m.Mode == "processes"; (m.BatchCPUus > 0) != hop {
			t.Errorf("%s: batch_cpu_us = %v, want it measured: %v", m.Mode, m.BatchCPUus, hop)
		}
	}
}

func TestSweepInvalidConfigExitsTwo(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		key  string
	}{
		{"zero batch size", []string{"sweep", "--batch-sizes", "0,4"}, "batch_sizes="},
		{"word batch size", []string{"sweep", "--batch-sizes", "big"}, "batch_sizes="},
		{"zero workers", []string{"sweep", "--worker-counts", "0"}, "worker_counts="},
		{"bad codec", []string{"sweep", "--codecs", "json"}, "codecs="},
		{"bad spin cost", []string{"sweep", "--spin-costs", "fast"}, "spin_costs="},
		{"records extension", []string{"sweep", "--records", "runs.txt", "--modes", "goroutines"}, "records="},
		{"recommend without processes", []string{"recommend", "--modes", "goroutines"}, "modes="},
		{"run batch", []string{"run", "--batch", "sometimes"}, "batch=sometimes"},
		{"overhead target", []string{"run", "--batch", "auto", "--overhead-target", "1.5"}, "overhead_target="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := ferry(t, nil, tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.key) {
				t.Errorf("exit %d, stderr %q; want 2 naming %q", code, stderr, tc.key)
			}
		})
	}
}
