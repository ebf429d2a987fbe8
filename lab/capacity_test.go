package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/internal/childtest"
	"github.com/ferrylab/ferry/lab/capacity"
	"github.com/ferrylab/ferry/report"
	"github.com/ferrylab/ferry/workload"
)

// ferryBin is the ferry binary the fleets of these tests run: workers and
// brokers are real processes.
var ferryBin string

func TestMain(m *testing.M) { childtest.MainWithFerry(m, &ferryBin) }

// TestCapacityEmulatedFleet runs the capacity path on small emulated
// fleets (one broker process and a 3-node cluster, up to 8 workers) and
// checks the report's structure, not its figures: this machine's timings
// are not the test's to judge.
func TestCapacityEmulatedFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dozen fleets of real processes")
	}
	layouts, err := capacity.ParseLayouts("coordinator=2,broker=4;coordinator=2,broker=4,nodes=3")
	if err != nil {
		t.Fatal(err)
	}
	html := filepath.Join(t.TempDir(), "capacity.html")
	var out bytes.Buffer
	err = RunCapacity(context.Background(), CapacityConfig{
		Capacity: capacity.Config{
			Job:     coordinator.Config{BatchSize: 100, Params: workload.Params{SpinCostNs: int64(200 * time.Microsecond), OutBytes: 1536}},
			Workers: []int{1, 8}, KneeAt: 4, Cluster: true, Layouts: layouts, RunTime: 200 * time.Millisecond, Repeats: 2, Coordinators: 2,
		},
		Corpus: corpus.GenConfig{Seed: 1, Words: 20},
		Fleet:  fleet.Config{Exe: ferryBin},
		HTML:   html, Format: "json", Stdout: &out,
	})
	if err != nil {
		t.Fatalf("RunCapacity: %v\n%s", err, out.String())
	}
	var r report.CapacityReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out.String())
	}
	res := r.Capacity
	if got, want := r.Schema, report.CapacitySchema; got != want {
		t.Errorf("schema = %q, want %q", got, want)
	}
	if got, want := len(res.Brokers), 2; got != want {
		t.Fatalf("broker shapes = %d, want %d (one broker, the cluster)", got, want)
	}
	for i, b := range res.Brokers {
		if got, want := b.Nodes, []int{1, 3}[i]; got != want {
			t.Errorf("shape %d: nodes = %d, want %d", i, got, want)
		}
		c := b.Costs
		if got := len(c.Brokers); got != b.Nodes {
			t.Errorf("%d nodes: %d broker fits", b.Nodes, got)
		}
		if c.Coordinator.KNsB <= 0 || c.Brokers[0].KNsB <= 0 || c.BytesPerDoc <= 1536 || c.Cores <= 0 {
			t.Errorf("%d nodes: costs not measured: %+v", b.Nodes, c)
		}
		if len(b.Calibration) < 3 {
			t.Errorf("%d nodes: %d calibration runs, want 3 sizes and the wait", b.Nodes, len(b.Calibration))
		}
		// The last series is the one before it (knee, else job) sharded over
		// two coordinators, at 8 workers.
		if len(b.Series) < 2 {
			t.Fatalf("%d nodes: %d series, want job, knee and sharded", b.Nodes, len(b.Series))
		}
		sharded := b.Series[len(b.Series)-1]
		b.Series = b.Series[:len(b.Series)-1]
		if !strings.HasSuffix(sharded.Name, ", 2 coordinators") || len(sharded.Points) != 1 || sharded.Points[0].Workers != 8 ||
			len(sharded.Points[0].Runs) != 2 || sharded.Points[0].DocsPerS <= 0 || sharded.Points[0].Predicted <= 0 {
			t.Errorf("%d nodes: sharded series %+v", b.Nodes, sharded)
		}
		// The knee series needs a knee that compute can put at 4 workers; on
		// a loaded machine the latency alone may put it further: a note says so.
		if got := len(b.Series); got != 2 && (got != 1 || !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "no knee series") })) {
			t.Fatalf("%d nodes: series = %d, want job and knee (or a note why not)", b.Nodes, got)
		}
		for _, s := range b.Series {
			p := s.Prediction
			if p.Knee <= 0 || p.Bottleneck == "" || len(p.Points) != 2 {
				t.Errorf("%d nodes, %s: prediction has no knee, bottleneck or points: %+v", b.Nodes, s.Name, p)
			}
			if got, want := len(s.Points), 2; got != want {
				t.Fatalf("%d nodes, %s: %d points, want %d", b.Nodes, s.Name, got, want)
			}
			for i, pt := range s.Points {
				if pt.Workers != []int{1, 8}[i] || len(pt.Runs) != 2 || pt.DocsPerS <= 0 || pt.Predicted <= 0 || pt.Limit == "" {
					t.Errorf("%d nodes, %s, point %d: %+v", b.Nodes, s.Name, i, pt)
				}
				for _, run := range pt.Runs {
					if run.Error != "" {
						t.Errorf("%d nodes, %s, %d workers: %s", b.Nodes, s.Name, pt.Workers, run.Error)
					}
				}
			}
		}
		if k := b.Series[len(b.Series)-1].Prediction.Knee; len(b.Series) == 2 && (k < 3.9 || k > 4.1) {
			t.Errorf("%d nodes: knee series predicted at %v workers, want the knee_at 4", b.Nodes, k)
		}
	}
	if got, want := len(res.Layouts), 2; got != want {
		t.Errorf("layouts predicted = %d, want %d", got, want)
	}
	if m := res.Memory; m.Workers != 8 || m.PeakMB <= 0 || m.BrokersMB <= 0 {
		t.Errorf("memory = %+v, want 8 workers and a broker measured", m)
	}
	if got, want := len(r.Goals), 4; got != want {
		t.Errorf("goals = %d, want %d", got, want)
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "Validation: 1 broker", "Validation: 3-node cluster", "Predicted throughput by layout", "goals"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
}
