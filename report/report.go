// Package report turns a run's measurements into what users read: an
// aligned text table, JSON with a stable schema, or CSV. It computes the
// derived figures (speedup, efficiency, identical results) in one place and
// does no measuring itself: the caller passes the measurements and the
// machine they were taken on (internal/machine.Probe).
package report

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/machine"
	"github.com/ferrylab/ferry/lab/floor"
	"github.com/ferrylab/ferry/workload"
)

// Schema versions the JSON output; bump it on any incompatible change.
const Schema = "ferry.report/v1"

// Report is a run: its configuration, the machine, one entry per mode.
type Report struct {
	Schema           string         `json:"schema"`
	Config           map[string]any `json:"config"`
	Manifest         Manifest       `json:"manifest"`
	Modes            []Mode         `json:"modes"`
	IdenticalResults bool           `json:"identical_results"` // every mode produced the same digest
	// NotCompared names the modes that failed, whose results cannot be
	// compared; IdenticalResults is then false. Empty when every mode ran.
	NotCompared []string     `json:"not_compared,omitempty"`
	Floor       []FloorPoint `json:"transport_floor,omitempty"`
	// Emulated is set when the workload waits instead of computing (sleep):
	// docs/s is what that many cores would reach, the CPU is the
	// coordinator's, the broker's and the transport's only.
	Emulated bool `json:"emulated,omitempty"`
	// CPUBreakdown is processes mode's CPU per document by process and
	// part; nil when not recorded (workers elsewhere, no processes run).
	CPUBreakdown *CPUBreakdown `json:"cpu_breakdown,omitempty"`
	// Repeats summarises the rounds of a run with --repeat 2 or more.
	Repeats *Repeats `json:"repeats,omitempty"`
	// Wide prints every column of the text table, not the narrow eight.
	Wide bool `json:"-"`
}

// Manifest describes the machine and build a run was measured on.
type Manifest struct {
	GoVersion  string `json:"go_version"`
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model,omitempty"`
	NATSServer string `json:"nats_server"`
	// CgroupCPU is the cgroup CPU quota ("max 100000" = none; cgroup v2
	// cpu.max, or v1 cfs quota and period); "" when unreadable.
	CgroupCPU string `json:"cgroup_cpu_max,omitempty"`
}

// Stage is one stage's per-batch time, in microseconds.
type Stage struct {
	P50us  float64 `json:"p50_us"`
	P99us  float64 `json:"p99_us"`
	MeanUs float64 `json:"mean_us"`
}

// Mode is one execution mode's figures.
type Mode struct {
	Mode       string                   `json:"mode"`
	Workers    int                      `json:"workers"`
	WallS      float64                  `json:"wall_s"`
	Docs       int64                    `json:"docs"`
	DocsPerS   float64                  `json:"docs_per_s"`
	MBPerS     float64                  `json:"text_mb_per_s"` // input text MB (10^6 bytes) per second
	Speedup    float64                  `json:"speedup"`       // docs_per_s over serial's; 0 without a serial run
	Efficiency float64                  `json:"efficiency"`    // speedup / workers
	Batches    int64                    `json:"batches"`
	BytesOut   int64                    `json:"bytes_out"`
	BytesIn    int64                    `json:"bytes_in"`
	BusyMean   float64                  `json:"busy_mean"` // mean fraction of wall time workers spent computing
	BusyMin    float64                  `json:"busy_min"`
	CPUus      float64                  `json:"cpu_us_per_doc,omitempty"` // CPU time per document, this process plus workers; 0 = not measured
	Retries    int64                    `json:"retries"`                  // re-sends after a timeout or error: possibly computed twice
	Requeues   int64                    `json:"requeues"`                 // re-sends of batches never delivered (no responders): not computed twice
	Splits     int64                    `json:"splits"`
	Duplicates int64                    `json:"duplicates_discarded"`
	Forged     int64                    `json:"forged_discarded"`          // results dropped: without their batch's token, for no batch in flight, or for no batch of the job (impossible range, other documents)
	Resumed    int64                    `json:"resumed_batches,omitempty"` // dispatch=jetstream: batches taken from a previous run's results
	Failed     int                      `json:"failed_docs"`
	Failures   []coordinator.DocFailure `json:"failures,omitempty"` // failed documents by input index (first 1,000)
	Digest     string                   `json:"digest"`
	GFLOPs     float64                  `json:"gflops,omitempty"` // GFLOP/s, for workloads that count FLOPs (infer)
	Stages     map[string]Stage         `json:"stages,omitempty"`
	Error      string                   `json:"error,omitempty"`
	// Planes is each worker process's data plane ("nats", "shm", "nats+shm"), by address (processes).
	Planes map[string]string `json:"data_planes,omitempty"`
	// BatchSizes traces the sizes --batch auto chose (absent for fixed).
	BatchSizes []coordinator.SizeStep `json:"batch_sizes,omitempty"`
	Overhead   float64                `json:"overhead,omitempty"` // non-compute share of the mean per-batch stage time
	// BatchCPUus is the hop's CPU per batch, in microseconds, that --batch
	// auto held under its overhead target; absent when it sized on stage times.
	BatchCPUus float64 `json:"batch_cpu_us,omitempty"`
}

// FloorPoint is the raw NATS echo round trip for one payload size, measured
// in the same run, against which ferry's per-batch overhead is read.
type FloorPoint struct {
	Bytes     int     `json:"bytes"`
	RawP50us  float64 `json:"raw_p50_us"`
	RawP99us  float64 `json:"raw_p99_us"`
	FerryP50  float64 `json:"ferry_p50_us,omitempty"`
	FerryP99  float64 `json:"ferry_p99_us,omitempty"`
	Ratio     float64 `json:"ratio,omitempty"` // ferry_p50_us / raw_p50_us
	Roundtrip int     `json:"roundtrips"`
	// BatchBytes and ResultBytes are ferry's encoded request and reply.
	BatchBytes  int `json:"batch_bytes,omitempty"`
	ResultBytes int `json:"result_bytes,omitempty"`
	// Stages is ferry's median time per stage, in microseconds.
	Stages map[string]float64 `json:"ferry_stages_p50_us,omitempty"`
	// Python's ProcessPoolExecutor round trip of the same payload, one task
	// at a time, measured in the same run; 0 when not measured.
	PythonP50us float64 `json:"python_p50_us,omitempty"`
	PythonP99us float64 `json:"python_p99_us,omitempty"`
	PythonRatio float64 `json:"ferry_over_python,omitempty"` // ferry_p50_us / python_p50_us
	// Ferry's round trip to the same worker over shared memory
	// (--data-plane shm), measured in turn; 0 when not measured.
	ShmP50us float64 `json:"shm_p50_us,omitempty"`
	ShmP99us float64 `json:"shm_p99_us,omitempty"`
	ShmRatio float64 `json:"shm_over_raw,omitempty"` // shm_p50_us / raw_p50_us
	// RawCPUus is the CPU time (broker, requester and echo together) of one
	// raw echo round trip of Bytes each way, RawCPUInFlight at a time; 0 when
	// not measured (the broker is not in this process).
	RawCPUus       float64 `json:"raw_cpu_us_per_roundtrip,omitempty"`
	RawCPUInFlight int     `json:"raw_cpu_inflight,omitempty"`
}

// SetCPU records a raw echo's measured CPU cost on p.
func (p *FloorPoint) SetCPU(c floor.CPUCost) {
	p.RawCPUus, p.RawCPUInFlight = us(c.PerRoundTrip), c.InFlight
}

// newManifest is the manifest of machine m.
func newManifest(m machine.Info) Manifest {
	return Manifest{
		GoVersion: m.GoVersion, GOOS: m.GOOS, GOARCH: m.GOARCH, NumCPU: m.NumCPU, GOMAXPROCS: m.GOMAXPROCS,
		CPUModel: m.CPUModel, NATSServer: m.NATSServer, CgroupCPU: m.CgroupCPU,
	}
}

// New builds a report of a run on machine m from each mode's stats (nil
// entries, for modes that failed, carry only their error).
func New(m machine.Info, cfg map[string]any, stats []*coordinator.Stats, errs []error) *Report {
	r := &Report{Schema: Schema, Config: cfg, Manifest: newManifest(m), IdenticalResults: true}
	var serial float64
	for _, s := range stats {
		if s != nil && s.Mode == coordinator.ModeSerial {
			serial = s.DocsPerSec()
		}
	}
	digest := ""
	for i, s := range stats {
		m := Mode{}
		if i < len(errs) && errs[i] != nil {
			m.Error = errs[i].Error()
			r.IdenticalResults = false
			if s != nil {
				r.NotCompared = append(r.NotCompared, s.Mode)
			} else {
				r.NotCompared = append(r.NotCompared, fmt.Sprintf("mode %d", i+1))
			}
		}
		if s == nil {
			r.IdenticalResults = false
			r.Modes = append(r.Modes, m)
			continue
		}
		m.Mode, m.Workers, m.WallS, m.Docs = s.Mode, s.Workers, s.Wall.Seconds(), s.Docs
		m.DocsPerS = s.DocsPerSec()
		if s.Wall > 0 {
			m.MBPerS = float64(s.TextBytes) / 1e6 / s.Wall.Seconds()
		}
		if serial > 0 {
			m.Speedup = m.DocsPerS / serial
			if m.Workers > 0 {
				m.Efficiency = m.Speedup / float64(m.Workers)
			}
		}
		m.Batches, m.BytesOut, m.BytesIn = s.Batches, s.BytesOut, s.BytesIn
		m.BusyMean, m.BusyMin = s.BusyMean(), s.BusyMin()
		m.Retries, m.Requeues, m.Splits, m.Duplicates, m.Failed = s.Retries, s.Requeues, s.Splits, s.Dupes, len(s.Failed)
		m.Forged, m.Planes = s.Forged, s.Planes
		m.Failures, m.Resumed = s.Failed, s.Resumed
		m.Digest = s.Digest
		m.BatchSizes, m.Overhead, m.BatchCPUus = s.BatchSizes, s.Overhead(), us(s.BatchCPU)
		if s.Docs > 0 {
			m.CPUus = us(s.CPU) / float64(s.Docs)
		}
		m.Stages = map[string]Stage{}
		for st := range coordinator.NumStages {
			q := s.Stages[st]
			if q.N == 0 {
				continue
			}
			m.Stages[st.String()] = Stage{P50us: us(q.P50), P99us: us(q.P99), MeanUs: us(q.Mean)}
		}
		if s.Digest == "" {
			r.IdenticalResults = false
		} else if digest == "" {
			digest = s.Digest
		} else if digest != s.Digest {
			r.IdenticalResults = false
		}
		r.Modes = append(r.Modes, m)
	}
	return r
}

// SetGFLOPs fills each mode's GFLOP/s from the FLOPs f spends on its
// documents; per core is GFLOPs / workers (serial has one).
func (r *Report) SetGFLOPs(f workload.Flopper) {
	for i := range r.Modes {
		if m := &r.Modes[i]; m.WallS > 0 {
			m.GFLOPs = f.FLOPs(int(m.Docs)) / m.WallS / 1e9
		}
	}
}

func us[T ~int64](d T) float64 { return float64(d) / 1e3 }

// Formats accepted by Write.
var Formats = []string{"text", "json", "csv"}

// Write renders r in format.
func Write(w io.Writer, r *Report, format string) error {
	switch format {
	case "text", "":
		return WriteText(w, r)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "csv":
		return WriteCSV(w, r)
	}
	return fmt.Errorf("report: unknown format %q (known: %v)", format, Formats)
}
