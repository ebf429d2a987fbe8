package capacity

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func near(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Max(math.Abs(want), 1e-9)
}

func TestFitLineRecoversALine(t *testing.T) {
	tests := []struct {
		name   string
		xs, ys []float64
		a, k   float64 // k in y per 1000 x
	}{
		{name: "exact", xs: []float64{1000, 4000, 16000}, ys: []float64{12, 18, 42}, a: 10, k: 2},
		{name: "one point goes through the origin", xs: []float64{2000}, ys: []float64{6}, a: 0, k: 3},
		// weighted by 1/y^2: k = (1000*1 + 2000*3/9) / (1000^2 + 2000^2/9) per x
		{name: "negative intercept is refitted through the origin", xs: []float64{1000, 2000}, ys: []float64{1, 3}, a: 0, k: 15.0 / 13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := fitLine(tt.xs, tt.ys)
			if !near(l.AUs, tt.a, 1e-6) || !near(l.KNsB, tt.k, 1e-6) {
				t.Errorf("fit = a %v k %v, want a %v k %v", l.AUs, l.KNsB, tt.a, tt.k)
			}
		})
	}
	if l := fitLine([]float64{1000, 4000, 16000}, []float64{12, 18, 42}); !near(l.R2, 1, 1e-9) {
		t.Errorf("R2 of an exact line = %v, want 1", l.R2)
	}
}

// costs are round figures: a batch of 100 documents is 200,000 bytes on
// the wire; the coordinator spends 100 us on it, the broker 200, the
// workers 100, and the machine has 2 cores.
var costs = Costs{
	Nodes:       1,
	Coordinator: Line{AUs: 20, KNsB: 0.4},
	Brokers:     []Line{{AUs: 40, KNsB: 0.8}},
	Workers:     Line{AUs: 100},
	BytesPerDoc: 2000,
	Cores:       2,
}

func TestPredict(t *testing.T) {
	tests := []struct {
		name       string
		layout     Layout
		compute    float64 // us per document
		knee       float64
		bottleneck string
		docs       []float64 // at 1, 4, 16, 64 workers
	}{
		// This machine: 400 us of CPU per batch on 2 cores saturates at
		// 5000 batches/s = 500,000 docs/s; a worker at 1 us/doc takes 200 us
		// per batch (100 compute + 100 own CPU): 500,000 docs/s, knee 1.
		{name: "machine", layout: Layout{Machine: true}, compute: 99, knee: 50, bottleneck: "this machine",
			docs: []float64{10000, 40000, 160000, 500000}},
		// Coordinator 2 cores at 100 us/batch: 20,000 batches/s; broker 4
		// cores at 200 us: 20,000 too, the coordinator is named first.
		{name: "separate", layout: Layout{Coordinator: 2, Broker: 4, Nodes: 1}, compute: 999, knee: 2000, bottleneck: "coordinator",
			docs: []float64{1000, 4000, 16000, 64000}},
		{name: "shared", layout: Layout{Shared: 3, Nodes: 1}, compute: 99, knee: 100, bottleneck: "3 shared cores",
			docs: []float64{10000, 40000, 160000, 640000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Predict(costs, tt.layout, Shape{BatchSize: 100, ComputeUs: tt.compute}, []int{1, 4, 16, 64})
			if !near(p.Knee, tt.knee, 1e-9) || !strings.HasPrefix(p.Bottleneck, tt.bottleneck) {
				t.Errorf("knee %v (%s), want %v (%s...)", p.Knee, p.Bottleneck, tt.knee, tt.bottleneck)
			}
			for i, want := range tt.docs {
				if got := p.Points[i].DocsPerS; !near(got, want, 1e-9) {
					t.Errorf("%d workers: %v docs/s, want %v", p.Points[i].Workers, got, want)
				}
			}
		})
	}
}

// Idle workers take cores from this machine's pool, so the knee comes
// sooner and throughput past it falls as workers are added.
func TestPredictIdleWorkers(t *testing.T) {
	c := costs
	c.IdleWorkerCores = 0.01
	p := Predict(c, Layout{Machine: true}, Shape{BatchSize: 100, ComputeUs: 99}, []int{64, 128})
	// w*10000 = (2 - 0.01w)/400us*100  =>  w = 2/(10000*4e-6 + 0.01) = 40
	if !near(p.Knee, 40, 1e-9) {
		t.Errorf("knee = %v, want 40", p.Knee)
	}
	if p.Points[1].DocsPerS >= p.Points[0].DocsPerS {
		t.Errorf("past the knee throughput rose with idle workers: %v then %v", p.Points[0].DocsPerS, p.Points[1].DocsPerS)
	}
}

func TestComputeForKnee(t *testing.T) {
	for _, knee := range []float64{4, 8, 30} {
		c := ComputeForKnee(costs, Layout{Machine: true}, Shape{BatchSize: 100}, knee)
		if got := Predict(costs, Layout{Machine: true}, Shape{BatchSize: 100, ComputeUs: c}, nil).Knee; !near(got, knee, 1e-6) {
			t.Errorf("knee at %v: compute %v gives knee %v", knee, c, got)
		}
	}
	// With no compute a worker's own 100 us already makes the knee 1: no
	// compute puts it below that.
	if c := ComputeForKnee(costs, Layout{Machine: true}, Shape{BatchSize: 100}, 0.5); c != 0 {
		t.Errorf("knee at 0.5: compute %v, want 0 (impossible)", c)
	}
}

func TestParseLayouts(t *testing.T) {
	tests := []struct {
		name, in string
		want     []Layout
		err      string
	}{
		{name: "two", in: "coordinator=2,broker=4; shared=8,nodes=3", want: []Layout{
			{Name: "coordinator=2,broker=4", Coordinator: 2, Broker: 4, Nodes: 1},
			{Name: "shared=8,nodes=3", Shared: 8, Nodes: 3}}},
		{name: "machine", in: "machine", want: []Layout{{Name: "machine", Machine: true, Nodes: 1}}},
		{name: "coordinators", in: "coordinator=8,broker=8,nodes=3,coordinators=3", want: []Layout{
			{Name: "coordinator=8,broker=8,nodes=3,coordinators=3", Coordinator: 8, Broker: 8, Nodes: 3, Coordinators: 3}}},
		{name: "half a coordinator", in: "shared=4,coordinators=1.5", err: "whole number"},
		{name: "empty", in: "", want: nil},
		{name: "missing broker", in: "coordinator=2", err: "give coordinator and broker"},
		{name: "both", in: "shared=2,coordinator=1", err: "shared excludes"},
		{name: "nodes", in: "shared=2,nodes=2", err: "nodes must be 1 or 3"},
		{name: "unknown key", in: "cpus=2", err: "unknown key cpus"},
		{name: "not a number", in: "coordinator=two,broker=4", err: "positive number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLayouts(tt.in)
			if tt.err != "" {
				if !errors.Is(err, ErrInvalidLayout) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want ErrInvalidLayout containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("layout %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// Batches in flight hide the round trip's latency only while it is
// shorter than the worker's time on the others.
func TestPredictLatency(t *testing.T) {
	tests := []struct {
		name     string
		inflight int
		latency  float64
		want     float64 // one worker's docs/s; its time per batch is 200 us
	}{
		{name: "hidden", inflight: 2, latency: 150, want: 500000},
		{name: "two in flight", inflight: 2, latency: 500, want: 100 / 350e-6},
		{name: "one in flight", inflight: 1, latency: 150, want: 100 / 350e-6},
		{name: "default is two", inflight: 0, latency: 500, want: 100 / 350e-6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := costs
			c.LatencyUs = tt.latency
			p := Predict(c, Layout{Coordinator: 100, Broker: 100, Nodes: 1}, Shape{BatchSize: 100, ComputeUs: 1, InFlight: tt.inflight}, nil)
			if !near(p.WorkerDocsPerS, tt.want, 1e-9) {
				t.Errorf("one worker: %v docs/s, want %v", p.WorkerDocsPerS, tt.want)
			}
		})
	}
}

// One coordinator's serial path caps it at a core's worth whatever its
// cores; sharding the job over coordinators multiplies that cap.
func TestPredictSerialPath(t *testing.T) {
	c := costs
	c.Serial = Line{AUs: 50} // 20,000 batches/s at most through one coordinator
	tests := []struct {
		name       string
		layout     Layout
		sat        float64 // batches/s
		bottleneck string
	}{
		{name: "one coordinator", layout: Layout{Coordinator: 8, Broker: 8, Nodes: 1}, sat: 20000, bottleneck: "one coordinator's serial path"},
		// three: serial paths 60,000, coordinators 24 cores / 100 us = 240,000,
		// the broker 8 cores / 200 us = 40,000
		{name: "three coordinators", layout: Layout{Coordinator: 8, Broker: 8, Nodes: 1, Coordinators: 3}, sat: 40000, bottleneck: "broker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Predict(c, tt.layout, Shape{BatchSize: 100, ComputeUs: 99}, []int{1 << 20})
			if got := p.Points[0].DocsPerS / 100; !near(got, tt.sat, 1e-9) || !strings.HasPrefix(p.Bottleneck, tt.bottleneck) {
				t.Errorf("saturates at %v batches/s (%s), want %v (%s...)", got, p.Bottleneck, tt.sat, tt.bottleneck)
			}
		})
	}
}

// With one coordinator a cluster's nodes cost what was measured; with one
// coordinator per node each carries a third of the batches at the first
// node's cost and two thirds of a third at the others'.
func TestBrokerDemands(t *testing.T) {
	c := Costs{Brokers: []Line{{AUs: 210}, {AUs: 100}, {AUs: 110}}}
	tests := []struct {
		n    int
		want []float64
	}{
		{n: 1, want: []float64{210, 100, 110}},
		{n: 3, want: []float64{(210 + 2*105) / 3.0, (210 + 2*105) / 3.0, (210 + 2*105) / 3.0}},
		{n: 2, want: []float64{210/2.0 + 105/2.0, 210/2.0 + 105/2.0, 105}},
	}
	for _, tt := range tests {
		got := brokerDemands(c, 0, tt.n)
		for j := range tt.want {
			if !near(got[j], tt.want[j], 1e-9) {
				t.Errorf("%d coordinators: node %d = %v, want %v", tt.n, j+1, got[j], tt.want[j])
			}
		}
	}
	if got := brokerDemands(Costs{Brokers: []Line{{AUs: 200}}}, 0, 3); len(got) != 1 || got[0] != 200 {
		t.Errorf("one node, three coordinators: %v, want [200]", got)
	}
}

// An emulated wait overshoots as soon as there is any compute: the knee
// jumps there, and a knee below the jump cannot be had.
func TestComputeForKneeOvershoot(t *testing.T) {
	c := costs
	c.OvershootUs = 300 // one worker: 100 (CPU) + 300 = 400 us per batch, knee at 2 with none
	s := Shape{BatchSize: 100, Emulated: true}
	if got := ComputeForKnee(c, Layout{Machine: true}, s, 1.5); got != 0 {
		t.Errorf("knee 1.5 below the overshoot's 2: compute %v, want 0", got)
	}
	s.ComputeUs = ComputeForKnee(c, Layout{Machine: true}, s, 3)
	if got := Predict(c, Layout{Machine: true}, s, nil).Knee; !near(got, 3, 1e-6) {
		t.Errorf("knee 3: got %v", got)
	}
}
