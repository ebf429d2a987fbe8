package coordinator

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/workload"
)

// ErrInvalidConfig is wrapped by every validation error; the message names
// the config key and the bad value.
var ErrInvalidConfig = errors.New("invalid config")

// Execution modes. Every mode runs the same workload code through the same
// job engine; they differ only in where a batch is computed.
const (
	ModeSerial     = "serial"     // one goroutine, no serialization: the speedup baseline
	ModeGoroutines = "goroutines" // N goroutines in this process, no serialization
	ModeGIL        = "gil"        // N goroutines sharing one lock while computing, like Python threads under the GIL
	ModeCodec      = "codec"      // N goroutines that round-trip every batch and result through the codec, no NATS
	ModeProcesses  = "processes"  // batches over NATS to worker processes
)

// Modes lists the modes in report order.
func Modes() []string {
	return []string{ModeSerial, ModeGoroutines, ModeGIL, ModeCodec, ModeProcesses}
}

// Config is one job. The zero value of every field is its default.
type Config struct {
	Workload  string          // workload name; "" = embed
	Params    workload.Params // workload parameters
	BatchSize int             // documents per batch; 0 = 100
	Workers   int             // lanes for in-process modes and workers expected for processes; 0 = GOMAXPROCS
	Codec     string          // packed or msgpack; "" = packed
	Compress  string          // compression of batches and results on the wire: "" (none) or s2
	InFlight  int             // batches in flight per worker (pipelining); 0 = 2; tiny batches need 16-64 to keep workers fed
	Window    int             // batches admitted but not yet written, bounding memory; 0 = 8 x workers x in-flight

	MaxAttempts   int           // sends of a batch before it is split to isolate bad documents; 0 = 3
	BatchTimeout  time.Duration // fixed reply deadline; 0 = derived from measured compute time
	TimeoutFloor  time.Duration // lower bound of the derived deadline; 0 = 1s
	TimeoutCeil   time.Duration // upper bound of the derived deadline; 0 = 30s
	WorkerWait    time.Duration // how long to wait for workers (at start and when all are gone); 0 = 30s
	StopGrace     time.Duration // after an interrupt, how long batches in flight may still finish; 0 = 2s, negative = none
	MaxBatchBytes int           // encoded batch limit; 0 = half the broker's max payload (processes) or unlimited
	Limits        proto.Limits  // limits on documents (max bytes per document, documents per batch)

	// MaxWorkers caps the worker processes a processes job uses, so one pool
	// can serve jobs of different sizes (ferry sweep); 0 = all that answer.
	MaxWorkers int
	// AutoBatch adapts the batch size during the run, starting at BatchSize:
	// it holds the measured per-batch overhead under OverheadTarget and
	// shrinks batches near the end so no worker idles while others finish.
	AutoBatch      bool
	OverheadTarget float64 // AutoBatch: per-batch overhead share to stay under; 0 = 0.05
	MaxBatchSize   int     // AutoBatch: largest batch; 0 = 1024 (and at most Limits.MaxDocs)
	// BatchCPU is the CPU one batch's hop costs whatever its size (broker
	// and both ends), as the caller measured it with a raw NATS echo of a
	// small message; AutoBatch then holds it, not the stage times' fixed
	// part, under OverheadTarget. 0 (a broker whose CPU this machine cannot
	// read, in-process modes) = the stage times.
	BatchCPU time.Duration

	// OnProgress, when set, is called with the documents written so far
	// each time results are flushed. It must be quick.
	OnProgress func(written int64)
	// Observe, when set, is told what happens to each batch as it happens
	// (live metrics). It is called from many goroutines and must be quick.
	Observe func(Event)
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Workload == "" {
		c.Workload = "embed"
	}
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.Codec == "" {
		c.Codec = proto.CodecPacked
	}
	if c.InFlight == 0 {
		c.InFlight = 2
	}
	if c.Window == 0 {
		c.Window = 8 * c.Workers * c.InFlight
	}
	if c.OverheadTarget == 0 {
		c.OverheadTarget = 0.05
	}
	if c.MaxBatchSize == 0 {
		c.MaxBatchSize = min(1024, c.Limits.WithDefaults().MaxDocs)
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 3
	}
	if c.TimeoutFloor == 0 {
		c.TimeoutFloor = time.Second
	}
	if c.TimeoutCeil == 0 {
		c.TimeoutCeil = 30 * time.Second
	}
	if c.WorkerWait == 0 {
		c.WorkerWait = 30 * time.Second
	}
	if c.StopGrace == 0 {
		c.StopGrace = 2 * time.Second
	}
	c.Limits = c.Limits.WithDefaults()
	return c
}

// Validate reports the first invalid field, naming its config key.
func (c Config) Validate() error {
	bad := func(key string, v any, why string) error {
		return fmt.Errorf("%w: %s=%v: %s", ErrInvalidConfig, key, v, why)
	}
	switch {
	case c.BatchSize < 0 || c.BatchSize > c.Limits.WithDefaults().MaxDocs:
		return bad("batch_size", c.BatchSize, fmt.Sprintf("must be between 1 and %d", c.Limits.WithDefaults().MaxDocs))
	case c.Workers < 0:
		return bad("workers", c.Workers, "must be positive (0 = one per core)")
	case c.InFlight < 0 || c.InFlight > proto.MaxInFlight:
		return bad("inflight", c.InFlight, fmt.Sprintf("must be between 1 and %d (what a worker queues)", proto.MaxInFlight))
	case c.Window < 0:
		return bad("window", c.Window, "must be positive")
	case c.MaxAttempts < 0:
		return bad("max_attempts", c.MaxAttempts, "must be positive")
	case c.MaxWorkers < 0:
		return bad("max_workers", c.MaxWorkers, "must be positive (0 = all that answer)")
	case c.OverheadTarget < 0 || c.OverheadTarget >= 1:
		return bad("overhead_target", c.OverheadTarget, "must be a fraction between 0 and 1")
	case c.MaxBatchSize < 0 || c.MaxBatchSize > c.Limits.WithDefaults().MaxDocs:
		return bad("max_batch_size", c.MaxBatchSize, fmt.Sprintf("must be between 1 and %d", c.Limits.WithDefaults().MaxDocs))
	case c.BatchTimeout < 0:
		return bad("batch_timeout", c.BatchTimeout, "must be positive")
	case c.TimeoutFloor < 0:
		return bad("timeout_floor", c.TimeoutFloor, "must be positive")
	case c.TimeoutCeil < 0 || (c.TimeoutCeil > 0 && c.TimeoutCeil < c.TimeoutFloor):
		return bad("timeout_ceil", c.TimeoutCeil, "must be positive and at least timeout_floor")
	case c.Codec != "" && !slices.Contains(proto.CodecNames(), c.Codec):
		return bad("codec", c.Codec, fmt.Sprintf("must be one of %v", proto.CodecNames()))
	case !slices.Contains(proto.CompressNames(), c.Compress):
		return bad("compress", c.Compress, `must be "" (none) or s2`)
	}
	if c.Workload != "" {
		if _, err := workload.New(c.Workload, c.Params); err != nil {
			return fmt.Errorf("%w: workload=%s: %v", ErrInvalidConfig, c.Workload, err)
		}
	}
	return nil
}
