package coordinator

import (
	"time"

	"github.com/ferrylab/ferry/internal/quantile"
)

// Stage is one step of a batch's life. In-process modes measure only the
// stages they have; processes measures seven, each side with its own
// monotonic clock, so no clock skew enters the split, and the pipe too
// when the workload is exec.
type Stage int

const (
	StageEncode       Stage = iota // coordinator encodes the batch
	StageTransport                 // round trip minus the worker's own time (queue included): the NATS hops
	StageWorkerDecode              // worker decodes the batch
	StageCompute                   // the workload itself
	StageWorkerEncode              // worker encodes the result
	StageDecode                    // coordinator decodes the result
	StagePipe                      // an exec workload's frames to its program and back, out of compute (exec only)
	// StageQueue is the time a batch waited in its worker, from arrival to
	// the start of its decode, behind the batch computed before it (inflight
	// > 1 pipelines batches): the worker's own clock, 0 from workers that
	// do not send it. It is the last stage so earlier indexes keep their
	// meaning.
	StageQueue
	NumStages
)

var stageNames = [NumStages]string{"encode", "transport", "worker_decode", "compute", "worker_encode", "decode", "pipe", "queue"}

func (s Stage) String() string { return stageNames[s] }

// Timing is one batch's measured stages; a zero entry was not measured.
type Timing [NumStages]time.Duration

// Busy is the time the computing side spent on the batch.
func (t *Timing) Busy() time.Duration {
	return t[StageWorkerDecode] + t[StagePipe] + t[StageCompute] + t[StageWorkerEncode]
}

// AtWorker is the time the batch spent in its worker: waiting there
// (queue) and busy. The round trip minus it is transport.
func (t *Timing) AtWorker() time.Duration { return t[StageQueue] + t.Busy() }

// boundQueue caps the worker's queue stage at the round trip it is part
// of: it comes from the worker's header, and no batch waits longer than it
// took.
func (t *Timing) boundQueue(roundTrip time.Duration) {
	t[StageQueue] = min(t[StageQueue], max(roundTrip, 0))
}

// setCompute records a workload's time, the part spent on an exec pipe
// (workload.Output.Hop) apart.
func (t *Timing) setCompute(total, pipe time.Duration) {
	t[StagePipe] = pipe
	t[StageCompute] = max(total-pipe, 1)
}

// samples keeps one stage's times for its quantiles in bounded memory.
type samples struct {
	s quantile.Stream[time.Duration]
}

func (s *samples) add(d time.Duration) { s.s.Add(d) }

// Quantiles summarises one stage. P50 and P99 are nearest-rank quantiles
// (internal/quantile), exact up to 65,536 batches and from a uniform sample
// past that; Mean and N cover every batch.
type Quantiles struct {
	P50, P99, Mean time.Duration
	N              int64
}

func (s *samples) quantiles() Quantiles {
	if s.s.N() == 0 {
		return Quantiles{}
	}
	return Quantiles{P50: s.s.Quantile(0.50), P99: s.s.Quantile(0.99), Mean: s.s.Mean(), N: s.s.N()}
}

// DocFailure is a document that failed for good, by input index.
type DocFailure struct {
	Index int64  `json:"index"`
	Error string `json:"error"`
}

// Stats is what one job measured.
type Stats struct {
	Mode      string
	Workers   int // lanes (in-process) or worker processes that answered
	Wall      time.Duration
	Docs      int64 // documents written (failed ones excluded)
	TextBytes int64 // input text bytes of all documents
	Batches   int64 // batches completed (after splits)
	BytesOut  int64 // encoded bytes sent to workers (processes, codec)
	BytesIn   int64 // encoded bytes received back
	Retries   int64 // re-sends after a failed attempt (timeout, error reply): the batch may have been computed twice
	Requeues  int64 // re-sends of batches that never reached a worker (no responders): nothing computed twice
	Splits    int64 // batches halved to isolate bad documents or to fit the payload limit
	Dupes     int64 // results discarded because their documents were already done
	Forged    int64 // results discarded: without their batch's token, for no batch in flight, or for no batch of this job (impossible range, other documents, undecodable)
	Resumed   int64 // batches taken from a previous run's stored results (dispatch=jetstream), not computed
	Failed    []DocFailure
	// Prefix is how far the output got: documents [0, Prefix) of the input
	// are written (or failed); on interrupt nothing past it is.
	Prefix int64
	Stages [NumStages]Quantiles
	// Planes is the data plane each worker process was sent batches on,
	// by address: "nats", "shm", or "nats+shm" (processes mode; nil elsewhere).
	Planes map[string]string
	// Busy is each worker's (or lane's) busy fraction: computing time over wall.
	Busy map[string]float64
	// AutoBatch is set when batch sizes adapted during the run; BatchSizes
	// then traces the sizes chosen.
	AutoBatch  bool
	BatchSizes []SizeStep
	// BatchCPU is the hop's CPU per batch auto held under the target
	// (Config.BatchCPU); 0 = it sized on stage times.
	BatchCPU time.Duration
	// Digest is a 64-bit xxHash over every document's output in input order: equal
	// digests mean bit-identical results.
	Digest string
	// CPU is the CPU time the job took on this machine (this process, with
	// an embedded broker, plus the worker processes), set by a caller that
	// can see them; 0 = not measured. Unlike wall time it does not depend
	// on the share of a busy machine a mode's threads get.
	CPU time.Duration
}

// DocsPerSec is throughput in documents per second.
func (s *Stats) DocsPerSec() float64 {
	if s.Wall <= 0 {
		return 0
	}
	return float64(s.Docs) / s.Wall.Seconds()
}

// BusyMean is the mean busy fraction across workers.
func (s *Stats) BusyMean() float64 {
	if len(s.Busy) == 0 {
		return 0
	}
	var sum float64
	for _, b := range s.Busy {
		sum += b
	}
	return sum / float64(len(s.Busy))
}

// Overhead is the share of the mean per-batch time (all measured stages
// but queue) not spent computing; 0 when only compute was measured.
// Queueing is left out: a batch waiting in its worker behind the one being
// computed (pipelining) costs no throughput, the worker is busy meanwhile.
func (s *Stats) Overhead() float64 {
	var total time.Duration
	for st := range NumStages {
		if st != StageQueue {
			total += s.Stages[st].Mean
		}
	}
	if total <= 0 {
		return 0
	}
	return float64(total-s.Stages[StageCompute].Mean) / float64(total)
}

// BusyMin is the least busy worker's fraction.
func (s *Stats) BusyMin() float64 {
	m := 0.0
	first := true
	for _, b := range s.Busy {
		if first || b < m {
			m, first = b, false
		}
	}
	return m
}
