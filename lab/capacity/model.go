package capacity

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/ferrylab/ferry/lab/sweep"
)

// Line is a CPU cost per batch fitted against the bytes the batch and its
// result put on the wire: CPU = A + K * bytes.
type Line struct {
	AUs  float64 `json:"a_us"`          // fixed CPU per batch, microseconds
	KNsB float64 `json:"k_ns_per_byte"` // CPU per byte of batch plus result, nanoseconds
	R2   float64 `json:"r2"`            // weighted coefficient of determination of the fit
}

// At is the line's CPU per batch of bytes wire bytes, in microseconds.
func (l Line) At(bytes float64) float64 { return l.AUs + l.KNsB*bytes/1e3 }

// fitLine fits y = a + k*x by least squares weighted by 1/y^2
// (sweep.FitLine: each point counts by its relative error, so small and
// large batches weigh alike), with k in y's unit per 1000 x: y in
// microseconds and x in bytes gives nanoseconds per byte. A negative fixed
// cost is noise, and a single size gives no line: both are refitted
// through the origin.
func fitLine(xs, ys []float64) Line {
	a, k, r2 := sweep.FitLine(xs, ys)
	if a < 0 || (a == 0 && k == 0) {
		a, k = 0, throughOrigin(xs, ys)
	}
	return Line{AUs: a, KNsB: k * 1e3, R2: r2}
}

// throughOrigin fits y = k*x, weighted by 1/y^2 as fitLine.
func throughOrigin(xs, ys []float64) float64 {
	var sxy, sxx float64
	for i := range xs {
		if ys[i] <= 0 {
			continue
		}
		w := 1 / (ys[i] * ys[i])
		sxy += w * xs[i] * ys[i]
		sxx += w * xs[i] * xs[i]
	}
	if sxx == 0 {
		return 0
	}
	return sxy / sxx
}

// Costs are what the model predicts from, measured by the calibration runs
// of one broker shape (one node, or a cluster): the CPU each part of the
// fleet spends per batch, as a line in the batch's wire bytes, and the
// wire bytes as a line in the batch size.
type Costs struct {
	Nodes       int    `json:"broker_nodes"`
	Coordinator Line   `json:"coordinator"`
	Brokers     []Line `json:"brokers"` // per node; the first is the node the coordinator is connected to
	Workers     Line   `json:"workers"` // worker side beside the compute: receive, decode, encode, reply
	// Serial is the part of Coordinator one goroutine does at a time
	// (reading every result off the one connection, writing results in
	// order): SerialShare of it, the share of the coordinator's CPU samples
	// under those functions in a profile of the calibration; zero = not
	// measured.
	Serial      Line    `json:"coordinator_serial"`
	SerialShare float64 `json:"coordinator_serial_share"`
	// BytesA and BytesPerDoc give the wire bytes (batch plus result) of a
	// batch of b documents: BytesA + BytesPerDoc*b.
	BytesA      float64 `json:"bytes_a"`
	BytesPerDoc float64 `json:"bytes_per_doc"`
	// IdleWorkerCores is what one attached, idle worker process uses:
	// runtime housekeeping, pings, discovery answers.
	IdleWorkerCores float64 `json:"idle_worker_cores"`
	// OvershootUs is how much longer than its nominal compute a batch's
	// emulated wait holds a worker: timer slack and wake-up latency, net of
	// making the result, which the wait covers and Workers already counts.
	OvershootUs float64 `json:"overshoot_us"`
	// WaitCPUUs is the CPU the workers spend per batch because it waits
	// (the emulated compute): the process goes idle and wakes again, which
	// a worker that computes does not. It counts against this machine's
	// cores, not in a worker's time per batch (it overlaps the wait).
	WaitCPUUs float64 `json:"wait_cpu_us"`
	// LatencyUs is a batch's round trip beside the worker's time, at one
	// batch in flight: from its result leaving the worker to the next batch
	// reaching it. Batches in flight hide it while it is shorter than the
	// worker's time on the others.
	LatencyUs float64 `json:"latency_us"`
	// Cores is the CPU the whole fleet used per second at saturation (no
	// compute, every part busy): the cores this machine gave the run.
	Cores float64 `json:"cores"`
	// SaturatedDocsPerS is the calibration's throughput with no compute at
	// the job's batch size.
	SaturatedDocsPerS float64 `json:"saturated_docs_per_s"`
}

// Bytes is the wire bytes of a batch of b documents.
func (c Costs) Bytes(b int) float64 { return c.BytesA + c.BytesPerDoc*float64(b) }

// Layout is where the coordinator and the broker nodes run. Workers are
// remote, a core each, unless Machine is set.
type Layout struct {
	Name string `json:"name"`
	// Machine: everything on this machine's cores (Costs.Cores), the
	// workers' CPU beside their compute included: the layout the
	// validation runs measure.
	Machine bool `json:"machine,omitempty"`
	// Coordinator and Broker are the cores of the coordinator and of each
	// broker node, on machines of their own.
	Coordinator float64 `json:"coordinator_cores,omitempty"`
	Broker      float64 `json:"broker_cores,omitempty"`
	// Shared, when set, is one pool of cores the coordinator and the broker
	// nodes share (Coordinator and Broker are then unused).
	Shared float64 `json:"shared_cores,omitempty"`
	Nodes  int     `json:"broker_nodes"` // 1, or the cluster's 3
	// Coordinators is how many coordinator processes share the job (its
	// input sharded by range), each on Coordinator cores and its own
	// connection, spread over the nodes in turn; 0 = 1.
	Coordinators int `json:"coordinators,omitempty"`
}

// ErrInvalidLayout is wrapped by ParseLayouts' errors.
var ErrInvalidLayout = errors.New("capacity: invalid layout")

// ParseLayouts reads layouts separated by ';', each a comma-separated list
// of key=value: coordinator=C,broker=B (cores on machines of their own),
// or shared=S (one pool of S cores for both), nodes=1 or 3 (default 1) and
// coordinators=N (default 1). "machine" is this machine's layout.
func ParseLayouts(s string) ([]Layout, error) {
	var out []Layout
	for _, spec := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' }) {
		if spec = strings.TrimSpace(spec); spec == "" {
			continue
		}
		l, err := parseLayout(spec)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func parseLayout(spec string) (Layout, error) {
	bad := func(why string) error { return fmt.Errorf("%w: %q: %s", ErrInvalidLayout, spec, why) }
	l := Layout{Name: spec, Nodes: 1}
	if spec == "machine" {
		l.Machine = true
		return l, nil
	}
	for _, kv := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return l, bad("want key=value, e.g. coordinator=2,broker=4")
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n <= 0 || math.IsInf(n, 0) {
			return l, bad(k + " must be a positive number of cores")
		}
		switch k {
		case "coordinator":
			l.Coordinator = n
		case "broker":
			l.Broker = n
		case "shared":
			l.Shared = n
		case "nodes":
			if n != 1 && n != 3 {
				return l, bad("nodes must be 1 or 3 (the model is measured on one broker and on the 3-node cluster)")
			}
			l.Nodes = int(n)
		case "coordinators":
			if n != math.Trunc(n) {
				return l, bad("coordinators must be a whole number")
			}
			l.Coordinators = int(n)
		default:
			return l, bad("unknown key " + k + " (want coordinator, broker, shared, nodes, coordinators)")
		}
	}
	switch {
	case l.Shared > 0 && (l.Coordinator > 0 || l.Broker > 0):
		return l, bad("shared excludes coordinator and broker")
	case l.Shared == 0 && (l.Coordinator == 0 || l.Broker == 0):
		return l, bad("give coordinator and broker cores, or shared")
	}
	return l, nil
}

// Shape is the job a prediction is for.
type Shape struct {
	BatchSize int     `json:"batch_size"`
	ComputeUs float64 `json:"compute_us_per_doc"`
	// Emulated: the compute is a wait (sleep), which overshoots by
	// Costs.OvershootUs per batch.
	Emulated bool `json:"emulated"`
	// InFlight is the batches in flight per worker; 0 = 2.
	InFlight int `json:"inflight"`
}

// Point is the predicted throughput at one worker count.
type Point struct {
	Workers  int     `json:"workers"`
	DocsPerS float64 `json:"docs_per_s"`
	// Limit is what sets it: "workers", or the saturated resource.
	Limit string `json:"limit"`
}

// Prediction is the model's answer for one job shape on one layout.
type Prediction struct {
	Layout Layout `json:"layout"`
	Shape  Shape  `json:"shape"`
	// WorkerDocsPerS is one worker's throughput: b / (compute + its CPU).
	WorkerDocsPerS float64 `json:"worker_docs_per_s"`
	// Resources is each resource's saturation throughput, docs/s.
	Resources []Resource `json:"resources"`
	// Knee is the worker count where the workers' line meets the first
	// saturated resource (Bottleneck); beyond it, workers add nothing.
	Knee       float64 `json:"knee_workers"`
	Bottleneck string  `json:"bottleneck"`
	Points     []Point `json:"points"`
}

// Resource is a pool of cores and the CPU one batch costs it.
type Resource struct {
	Name     string  `json:"name"`
	Cores    float64 `json:"cores"`
	DemandUs float64 `json:"demand_us_per_batch"`
	// IdlePerWorker is the cores each attached worker takes from it while
	// idle (this machine's layout only).
	IdlePerWorker float64 `json:"idle_cores_per_worker,omitempty"`
}

// DocsPerS is the resource's saturation throughput with w workers attached.
func (r Resource) DocsPerS(b, w int) float64 {
	left := r.Cores - r.IdlePerWorker*float64(w)
	if r.DemandUs <= 0 {
		return math.Inf(1)
	}
	return math.Max(left, 0) / (r.DemandUs / 1e6) * float64(b)
}

// Predict is the model: each batch of b documents keeps a worker busy for
// its compute plus the worker's own CPU, t = b*c + overshoot + W(bytes),
// and with k batches in flight per worker the round trip's latency L is
// hidden while it is shorter than the worker's time on the others, so w
// workers reach
//
//	X_workers(w) = w * b / max(t, (t + L) / k)
//
// and every resource r (a pool of n_r cores) spends D_r CPU per batch, so
// it saturates at X_r = n_r * b / D_r. Throughput is the least of them:
//
//	X(w) = min(X_workers(w), min_r X_r)
//
// and the knee, where the workers' line meets the first saturated
// resource, is w* = min_r X_r / X_workers(1). Per-batch CPU is a line in
// the batch's wire bytes, D = a + k*bytes, fitted from the calibration.
func Predict(c Costs, l Layout, s Shape, workers []int) Prediction {
	bytes := c.Bytes(s.BatchSize)
	coord, work := c.Coordinator.At(bytes), c.Workers.At(bytes)
	coordinators := max(l.Coordinators, 1)
	brokers := brokerDemands(c, bytes, coordinators)
	var brokerSum float64
	for _, d := range brokers {
		brokerSum += d
	}
	cycle := float64(s.BatchSize)*s.ComputeUs + work
	if s.Emulated && s.ComputeUs > 0 { // no compute, no wait to overshoot
		cycle += c.OvershootUs
	}
	// With k batches in flight a worker waits for none while the latency
	// is shorter than its time on the other k-1: each batch takes
	// max(cycle, (cycle + latency) / k) of the worker's time.
	k := s.InFlight
	if k == 0 {
		k = 2
	}
	cycle = math.Max(cycle, (cycle+c.LatencyUs)/float64(k))
	p := Prediction{Layout: l, Shape: s, WorkerDocsPerS: float64(s.BatchSize) / (cycle / 1e6)}
	switch {
	case l.Machine:
		workers := work
		if s.Emulated && s.ComputeUs > 0 {
			workers += c.WaitCPUUs
		}
		p.Resources = []Resource{{Name: fmt.Sprintf("this machine's %.1f cores (coordinator, %s, workers' CPU)", c.Cores, nodesName(len(brokers))),
			Cores: c.Cores, DemandUs: coord + brokerSum + workers, IdlePerWorker: c.IdleWorkerCores}}
	case l.Shared > 0:
		p.Resources = []Resource{{Name: fmt.Sprintf("%g shared cores (coordinator, %s)", l.Shared, nodesName(len(brokers))), Cores: l.Shared, DemandUs: coord + brokerSum}}
	default:
		name := fmt.Sprintf("coordinator (%g cores)", l.Coordinator)
		if coordinators > 1 {
			name = fmt.Sprintf("%d coordinators (%g cores each)", coordinators, l.Coordinator)
		}
		p.Resources = append(p.Resources, Resource{Name: name, Cores: l.Coordinator * float64(coordinators), DemandUs: coord})
		for i, d := range brokers {
			name := fmt.Sprintf("broker (%g cores)", l.Broker)
			if len(brokers) > 1 {
				name = fmt.Sprintf("broker node %d (%g cores)", i+1, l.Broker)
			}
			p.Resources = append(p.Resources, Resource{Name: name, Cores: l.Broker, DemandUs: d})
		}
	}
	// Whatever its cores, one coordinator does part of every batch on one
	// goroutine at a time: a core's worth per coordinator at most.
	if serial := c.Serial.At(bytes); serial > 0 {
		name := "one coordinator's serial path (its connection's read loop, the ordered write)"
		if coordinators > 1 {
			name = fmt.Sprintf("%d coordinators' serial paths", coordinators)
		}
		p.Resources = append(p.Resources, Resource{Name: name, Cores: float64(coordinators), DemandUs: serial})
	}
	// The knee solves w * x1 = X_r(w); with idle cores taken per worker,
	// X_r falls with w, so it is found per resource in closed form.
	p.Knee = math.Inf(1)
	for _, r := range p.Resources {
		per := r.DemandUs / 1e6 / float64(s.BatchSize) // core-seconds per document
		if per <= 0 {
			continue
		}
		// w*x1 = (n - i*w)/per  =>  w = n / (x1*per + i)
		if k := r.Cores / (p.WorkerDocsPerS*per + r.IdlePerWorker); k < p.Knee {
			p.Knee, p.Bottleneck = k, r.Name
		}
	}
	for _, w := range workers {
		pt := Point{Workers: w, DocsPerS: float64(w) * p.WorkerDocsPerS, Limit: "workers"}
		for _, r := range p.Resources {
			if x := r.DocsPerS(s.BatchSize, w); x < pt.DocsPerS {
				pt.DocsPerS, pt.Limit = x, r.Name
			}
		}
		p.Points = append(p.Points, pt)
	}
	return p
}

// brokerDemands is each broker node's CPU per batch of bytes with n
// coordinators spread over the nodes in turn. A node carries every batch
// of its own coordinators (at the first node's measured cost, which holds
// its local and routed deliveries alike) and the batches other nodes'
// coordinators send to its workers, 1/nodes of theirs (at the measured
// cost of a node without a coordinator, per batch of the job).
func brokerDemands(c Costs, bytes float64, n int) []float64 {
	m := len(c.Brokers)
	if m == 0 {
		return nil
	}
	first := c.Brokers[0].At(bytes)
	if m == 1 {
		return []float64{first}
	}
	var other float64
	for _, b := range c.Brokers[1:] {
		other += b.At(bytes)
	}
	other /= float64(m - 1)
	out := make([]float64, m)
	for j := range out {
		own := n / m // coordinators on node j, assigned in turn
		if j < n%m {
			own++
		}
		if n == 1 && j > 0 {
			out[j] = c.Brokers[j].At(bytes) // as measured, node by node
			continue
		}
		out[j] = float64(own)/float64(n)*first + float64(n-own)/float64(n)*other
	}
	return out
}

func nodesName(n int) string {
	if n == 1 {
		return "broker"
	}
	return fmt.Sprintf("%d broker nodes", n)
}

// ComputeForKnee is the compute per document that puts the knee of layout
// l at knee workers for a job shaped like s; 0 when no compute does (with
// none at all the knee is already past it).
func ComputeForKnee(c Costs, l Layout, s Shape, knee float64) float64 {
	at := func(compute float64) float64 {
		s.ComputeUs = compute
		return Predict(c, l, s, nil).Knee
	}
	if at(1e-9) >= knee { // the least compute that still waits (and overshoots)
		return 0
	}
	// The knee is proportional to the worker's cycle (for a resource
	// without idle cost) and rises with it otherwise: bisect on compute.
	lo, hi := 1e-9, 1.0
	for at(hi) < knee {
		if hi *= 2; hi > 1e9 {
			return 0
		}
	}
	for range 60 {
		mid := (lo + hi) / 2
		if at(mid) < knee {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}
