package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/report"
	"github.com/ferrylab/ferry/workload"
)

// runJob runs job in goroutines and processes mode, processes sharded
// over coordinators, writes out and returns the report.
func runJob(t *testing.T, workloadName string, coordinators int, out string) report.Report {
	t.Helper()
	var stdout bytes.Buffer
	err := Run(context.Background(), Config{
		Job:          coordinator.Config{Workload: workloadName, Workers: 2, BatchSize: 37, Params: workload.Params{ChunkTokens: 16}},
		Modes:        []string{coordinator.ModeGoroutines, coordinator.ModeProcesses},
		Coordinators: coordinators,
		Input:        Input{Gen: corpus.GenConfig{Seed: 3, Docs: 1003, Words: 40}},
		Out:          out,
		Fleet:        fleet.Config{Exe: ferryBin},
		Format:       "json",
		Stdout:       &stdout,
	})
	if err != nil {
		t.Fatalf("Run with %d coordinators: %v\n%s", coordinators, err, stdout.String())
	}
	var r report.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout.String())
	}
	return r
}

// A job sharded over three coordinator processes writes the same results,
// byte for byte and in input order, as one coordinator, and its digest is
// the goroutines run's.
func TestShardedCoordinatorsMatchOne(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker and coordinator processes")
	}
	for _, tc := range []struct{ name, workload, ext string }{
		{name: "vectors", workload: "embed", ext: ".npy"},
		{name: "spans", workload: "chunk", ext: ".jsonl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			one, three := filepath.Join(dir, "one"+tc.ext), filepath.Join(dir, "three"+tc.ext)
			runJob(t, tc.workload, 1, one)
			r := runJob(t, tc.workload, 3, three)
			if !r.IdenticalResults {
				t.Errorf("sharded digest %s differs from goroutines' %s", r.Modes[1].Digest, r.Modes[0].Digest)
			}
			if p := r.Modes[1]; p.Docs != 1003 || p.Batches < 3 || p.Workers != 2 {
				t.Errorf("sharded processes mode: docs %d, batches %d, workers %d", p.Docs, p.Batches, p.Workers)
			}
			a, err := os.ReadFile(one)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(three)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Errorf("output of three coordinators (%d bytes) differs from one's (%d bytes)", len(b), len(a))
			}
		})
	}
}

func TestSkipSourceRange(t *testing.T) {
	src := &skipSource{src: corpus.Slice([]string{"a", "b", "c", "d", "e"}), first: 1, last: 4}
	var got []string
	for i := int64(0); ; i++ {
		d, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if d.Index != i {
			t.Errorf("document %q has index %d, want %d", d.Text, d.Index, i)
		}
		got = append(got, d.Text)
	}
	if want := []string{"b", "c", "d"}; len(got) != 3 || got[0] != want[0] || got[2] != want[2] {
		t.Errorf("range [1, 4) = %v, want %v", got, want)
	}
	if src.Len() != 3 {
		t.Errorf("Len = %d, want 3", src.Len())
	}
}

func TestMergeShardStats(t *testing.T) {
	specs := []shardSpec{{First: 0, Last: 10}, {First: 10, Last: 30}}
	a := &coordinator.Stats{Wall: time.Second, Workers: 2, Docs: 10, Batches: 2, Prefix: 10, Busy: map[string]float64{"w1": 0.5}}
	a.Stages[coordinator.StageCompute] = coordinator.Quantiles{P50: 100, P99: 200, Mean: 100, N: 2}
	b := &coordinator.Stats{Wall: 2 * time.Second, Workers: 2, Docs: 19, Batches: 6, Prefix: 20, Busy: map[string]float64{"w1": 0.5},
		Failed: []coordinator.DocFailure{{Index: 3, Error: "bad"}}}
	b.Stages[coordinator.StageCompute] = coordinator.Quantiles{P50: 300, P99: 900, Mean: 300, N: 6}
	st := mergeShardStats(specs, []*coordinator.Stats{a, b})
	q := st.Stages[coordinator.StageCompute]
	switch {
	case st.Wall != 2*time.Second || st.Docs != 29 || st.Batches != 8 || st.Prefix != 30:
		t.Errorf("merged wall %v docs %d batches %d prefix %d", st.Wall, st.Docs, st.Batches, st.Prefix)
	case len(st.Failed) != 1 || st.Failed[0].Index != 13:
		t.Errorf("failures %+v, want document 13", st.Failed)
	case q.N != 8 || q.Mean != 250 || q.P50 != 250 || q.P99 != 900:
		t.Errorf("compute stage %+v, want N 8, mean 250, p50 250 (weighted), p99 900 (largest)", q)
	case st.Busy["w1"] != 0.75: // 0.5 s + 1 s over 2 s
		t.Errorf("busy %v, want 0.75", st.Busy["w1"])
	}
}
