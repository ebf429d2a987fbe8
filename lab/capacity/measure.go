package capacity

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/sink"
	"github.com/nats-io/nats.go"
)

// Fleet is a running local fleet the runs are measured on (fleet.Fleet):
// the coordinator's connection and the processes whose CPU is read.
type Fleet interface {
	Conn() *nats.Conn
	BrokerPIDs() []int // first node first: the coordinator's own
	WorkerPIDs() []int
}

// ProcessCPU reads a process's CPU time so far (fleet.ProcessCPU).
type ProcessCPU func(pid int) (time.Duration, error)

// Sample is one measured job: its throughput and what each part of the fleet
// spent in CPU per batch while it ran.
type Sample struct {
	Series    string  `json:"series"` // calibrate, job or knee
	Repeat    int     `json:"repeat"`
	Nodes     int     `json:"broker_nodes"`
	Workers   int     `json:"workers"`
	BatchSize int     `json:"batch_size"`
	ComputeUs float64 `json:"compute_us_per_doc"` // the emulated compute asked for
	Docs      int64   `json:"docs"`
	WallS     float64 `json:"wall_s"`
	DocsPerS  float64 `json:"docs_per_s"`
	Batches   int64   `json:"batches"`
	// Bytes is the mean encoded batch plus result, per batch.
	Bytes float64 `json:"bytes_per_batch"`
	// WorkerCycleUs is the mean time a worker spent on a batch (decode,
	// compute or its emulation, encode).
	WorkerCycleUs float64 `json:"worker_cycle_us"`
	// ComputeStageUs is the compute stage alone: making the result and
	// the emulated wait.
	ComputeStageUs float64 `json:"compute_stage_us"`
	// TransportUs is the mean round trip of a batch minus the worker's own
	// time: the hops through the broker, and the wait behind another batch
	// in the worker's queue when more than one is in flight.
	TransportUs float64 `json:"transport_us"`
	// ComputeStageP50Us and TransportP50Us are the two stages' medians.
	ComputeStageP50Us float64 `json:"compute_stage_p50_us"`
	TransportP50Us    float64 `json:"transport_p50_us"`
	// CPU per batch, in microseconds: this process (the coordinator), each
	// broker node (first = the coordinator's), and all workers together.
	CoordinatorUs float64   `json:"coordinator_cpu_us_per_batch"`
	BrokerUs      []float64 `json:"broker_cpu_us_per_batch"`
	WorkersUs     float64   `json:"workers_cpu_us_per_batch"`
	// Busy is the workers' mean and least busy fraction (decode, compute
	// or wait, encode over wall time): below 1, workers waited for batches.
	Busy    float64 `json:"busy_mean"`
	BusyMin float64 `json:"busy_min"`
	// Attached is the most workers that served the run at once; Resent
	// the batches sent again (timeouts, errors, workers gone).
	Attached int   `json:"attached"`
	Resent   int64 `json:"resent"`
	// SerialUs is the coordinator's CPU per batch on its serial path, from
	// a CPU profile (calibration runs only).
	SerialUs float64 `json:"coordinator_serial_us,omitempty"`
	// Cores is the CPU all of them used over the run, per second of wall time.
	Cores float64 `json:"cores"`
	// Predicted is the model's docs/s for this run (validation runs) on
	// the cores this machine gave the fleet right before it (CoresBefore,
	// measured by a short run with no compute when there are workers
	// enough to saturate, else the calibration's); PredictedCalibrated is
	// the same with the calibration's cores.
	Predicted   float64 `json:"predicted_docs_per_s,omitempty"`
	CoresBefore float64 `json:"cores_before,omitempty"`
	// Limit is what the prediction says sets the throughput: "workers",
	// or the saturated resource.
	Limit               string  `json:"predicted_limit,omitempty"`
	PredictedCalibrated float64 `json:"predicted_calibrated_docs_per_s,omitempty"`
	Error               string  `json:"error,omitempty"`
}

// ErrorRatio is the prediction's relative error: predicted over measured,
// minus 1; 0 when either is missing.
func (r Sample) ErrorRatio() float64 {
	if r.DocsPerS <= 0 || r.Predicted <= 0 {
		return 0
	}
	return r.Predicted/r.DocsPerS - 1
}

// cpuSnapshot is the CPU time of each part of the fleet at one moment.
type cpuSnapshot struct {
	self    time.Duration
	brokers []time.Duration
	workers time.Duration
}

func snapshot(f Fleet, cpu ProcessCPU) (cpuSnapshot, error) {
	var s cpuSnapshot
	// The coordinator is this process and, in a sharded run, the
	// coordinator processes it started and has waited for.
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err != nil {
			return s, fmt.Errorf("capacity: read this process's CPU: %w", err)
		}
		s.self += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for _, pid := range f.BrokerPIDs() {
		d, err := cpu(pid)
		if err != nil {
			return s, fmt.Errorf("capacity: read broker CPU: %w", err)
		}
		s.brokers = append(s.brokers, d)
	}
	for _, pid := range f.WorkerPIDs() {
		d, err := cpu(pid)
		if err != nil {
			return s, fmt.Errorf("capacity: read worker CPU: %w", err)
		}
		s.workers += d
	}
	return s, nil
}

// measure runs job on workers of the fleet over docs and reads every
// part's CPU before and after.
func measure(ctx context.Context, f Fleet, cpu ProcessCPU, job coordinator.Config, workers int, docs []string) (Sample, error) {
	// The window is the job's to derive from its workers (8 x workers x
	// in-flight batches): one derived for fewer workers would starve them.
	job.Workers, job.MaxWorkers, job.Window = workers, workers, 0
	// The backend's own log stays quiet: its warnings at the end of a short
	// run (its workers' lanes ending with the job) are not the report's.
	backend, err := coordinator.NewBackend(coordinator.BackendConfig{Mode: coordinator.ModeProcesses, Job: job, Conn: f.Conn(), Expect: workers})
	if err != nil {
		return Sample{}, err
	}
	return measureRun(f, cpu, job, workers, func() (*coordinator.Stats, error) {
		return coordinator.Run(ctx, job, corpus.Slice(docs), backend, sink.Discard{})
	})
}

// measureRun reads every part's CPU before and after run, which runs job
// on workers of the fleet.
func measureRun(f Fleet, cpu ProcessCPU, job coordinator.Config, workers int, run func() (*coordinator.Stats, error)) (Sample, error) {
	r := Sample{Nodes: len(f.BrokerPIDs()), Workers: workers, BatchSize: job.BatchSize, ComputeUs: float64(job.Params.SpinCostNs) / 1e3}
	c0, err := snapshot(f, cpu)
	if err != nil {
		return r, err
	}
	st, err := run()
	if err != nil {
		return r, err
	}
	c1, err := snapshot(f, cpu)
	if err != nil {
		return r, err
	}
	r.Docs, r.WallS, r.DocsPerS, r.Batches = st.Docs, st.Wall.Seconds(), st.DocsPerSec(), st.Batches
	r.Busy, r.BusyMin = st.BusyMean(), st.BusyMin()
	r.Attached, r.Resent = st.Workers, st.Retries+st.Requeues
	if st.Batches == 0 {
		return r, fmt.Errorf("capacity: no batch completed")
	}
	n := float64(st.Batches)
	r.Bytes = float64(st.BytesOut+st.BytesIn) / n
	r.WorkerCycleUs = us(st.Stages[coordinator.StageWorkerDecode].Mean + st.Stages[coordinator.StageCompute].Mean + st.Stages[coordinator.StageWorkerEncode].Mean)
	r.ComputeStageUs = us(st.Stages[coordinator.StageCompute].Mean)
	r.TransportUs = us(st.Stages[coordinator.StageTransport].Mean)
	r.ComputeStageP50Us = us(st.Stages[coordinator.StageCompute].P50)
	r.TransportP50Us = us(st.Stages[coordinator.StageTransport].P50)
	r.CoordinatorUs = us(c1.self-c0.self) / n
	total := c1.self - c0.self + c1.workers - c0.workers
	for i := range c1.brokers {
		if i < len(c0.brokers) {
			r.BrokerUs = append(r.BrokerUs, us(c1.brokers[i]-c0.brokers[i])/n)
			total += c1.brokers[i] - c0.brokers[i]
		}
	}
	r.WorkersUs = us(c1.workers-c0.workers) / n
	if st.Wall > 0 {
		r.Cores = total.Seconds() / st.Wall.Seconds()
	}
	return r, nil
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

// Memory is the resident memory of the fleet's processes, from /proc.
type Memory struct {
	Workers       int     `json:"workers"`
	CoordinatorMB float64 `json:"coordinator_mb"`
	BrokersMB     float64 `json:"brokers_mb"`
	WorkersMB     float64 `json:"workers_mb"`
	TotalMB       float64 `json:"total_mb"`
	// Peak is the sum of each process's own peak (VmHWM): at least the
	// peak of the total.
	PeakMB float64 `json:"peak_total_mb"`
}

// memoryOf reads VmRSS and VmHWM of this process and the fleet's.
func memoryOf(f Fleet) (Memory, error) {
	var m Memory
	var peak float64
	add := func(pid string, to *float64) error {
		rss, hwm, err := procRSS(pid)
		if err != nil {
			return err
		}
		*to += rss
		peak += hwm
		return nil
	}
	if err := add("self", &m.CoordinatorMB); err != nil {
		return m, err
	}
	for _, pid := range f.BrokerPIDs() {
		if err := add(strconv.Itoa(pid), &m.BrokersMB); err != nil {
			return m, err
		}
	}
	for _, pid := range f.WorkerPIDs() {
		if err := add(strconv.Itoa(pid), &m.WorkersMB); err != nil {
			return m, err
		}
		m.Workers++
	}
	m.TotalMB, m.PeakMB = m.CoordinatorMB+m.BrokersMB+m.WorkersMB, peak
	return m, nil
}

// procRSS reads a process's resident set and its peak, in MB (10^6 bytes),
// from /proc/<pid>/status.
func procRSS(pid string) (rss, hwm float64, err error) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, 0, fmt.Errorf("capacity: read memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			return 0, 0, fmt.Errorf("capacity: /proc/%s/status %s: %w", pid, k, err)
		}
		if k == "VmRSS" {
			rss = kb * 1024 / 1e6
		} else {
			hwm = kb * 1024 / 1e6
		}
	}
	return rss, hwm, sc.Err()
}
