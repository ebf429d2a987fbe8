package coordinator

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/shm"
	"github.com/nats-io/nats.go"
)

// Backend computes batches: it pulls Tasks from the Queue until Next returns
// ErrDone, and answers each with Complete, Fail, Requeue or Split.
type Backend interface {
	// Name is the mode name shown in reports.
	Name() string
	// Run serves q until the job is done (return nil) or ctx ends.
	Run(ctx context.Context, q *Queue) error
}

// A Backend may also have any of the capabilities below. Run asks for
// them once, in capabilitiesOf, and nowhere else. Which backend has which:
//
//	                Local  Processes  JetStream
//	BatchLimiter           yes        yes
//	Readier                yes
//	Resumable                         yes
//	WorkerCounter   yes    yes
//	PlaneReporter          yes
type (
	// BatchLimiter caps a batch's encoded size (half the broker's max
	// payload); Run uses it when Config.MaxBatchBytes is 0.
	BatchLimiter interface {
		MaxBatchBytes() int
	}
	// Readier waits until the backend can take work (its expected workers
	// are attached). Run calls Ready before the clock starts: throughput is
	// not worker start-up.
	Readier interface {
		Ready(ctx context.Context) error
	}
	// Resumable is a backend whose job outlives this process: run again with
	// the same JobID and it takes the batches a previous run finished from
	// their stored results. Resumed counts those batches (Stats.Resumed).
	Resumable interface {
		JobID() string
		Resumed() int64
	}
	// WorkerCounter says how many workers served the job (Stats.Workers);
	// without it Run counts the workers that reported busy time.
	WorkerCounter interface {
		WorkerCount() int
	}
	// PlaneReporter says which data plane each worker was sent batches
	// on (Stats.Planes).
	PlaneReporter interface {
		Planes() map[string]string
	}
)

var (
	_ WorkerCounter = (*Local)(nil)
	_ BatchLimiter  = (*Processes)(nil)
	_ Readier       = (*Processes)(nil)
	_ WorkerCounter = (*Processes)(nil)
	_ PlaneReporter = (*Processes)(nil)
	_ BatchLimiter  = (*JetStream)(nil)
	_ Resumable     = (*JetStream)(nil)
)

// capabilities are a backend's optional interfaces, nil where it has none.
type capabilities struct {
	limiter BatchLimiter
	readier Readier
	resume  Resumable
	workers WorkerCounter
	planes  PlaneReporter
}

func capabilitiesOf(b Backend) capabilities {
	var c capabilities
	c.limiter, _ = b.(BatchLimiter)
	c.readier, _ = b.(Readier)
	c.resume, _ = b.(Resumable)
	c.workers, _ = b.(WorkerCounter)
	c.planes, _ = b.(PlaneReporter)
	return c
}

// BackendConfig chooses a backend by mode and configures it.
type BackendConfig struct {
	// Mode is one of Modes(); required.
	Mode string
	// Dispatch is how processes mode sends batches: DispatchRequest or
	// DispatchJetStream; "" = request. Other modes ignore it.
	Dispatch string
	// Job is the job the backend will serve. Job.Workers is the lanes of
	// the in-process modes and Job.Codec codec mode's codec.
	Job Config
	// Conn is the open broker connection processes mode sends batches on;
	// required for processes, ignored by the other modes.
	Conn *nats.Conn
	// Expect is how many workers processes mode (request dispatch) waits
	// for before the clock starts; 0 = one.
	Expect int
	// Codec, for codec mode, is the codec every batch and result
	// round-trips through instead of Job.Codec (e.g. a proto.NewCompressed
	// one); nil = Job.Codec. Other modes ignore it.
	Codec proto.Codec
	// JobID is the jetstream job to resume; "" = a new random one.
	JobID string
	// Shm, for processes mode (request dispatch), sends batches to the
	// workers it holds over shared memory (the mode is then named
	// processes/shm); the others over NATS. nil = NATS only.
	Shm *shm.Registry
	// Log gets the backend's warnings; nil = discard.
	Log *slog.Logger
}

// NewBackend returns the backend for cfg.Mode (and, in processes mode,
// cfg.Dispatch): a *Local for serial, goroutines, gil and codec, a
// *Processes or a *JetStream for processes. Processes mode without
// cfg.Conn is an error wrapping ErrInvalidConfig.
func NewBackend(cfg BackendConfig) (Backend, error) {
	if cfg.Mode == ModeCodec && cfg.Codec != nil {
		return asBackend(NewCodecMode(cfg.Job.Workers, cfg.Codec))
	}
	if cfg.Mode != ModeProcesses {
		return asBackend(NewLocal(cfg.Mode, cfg.Job.Workers, cfg.Job.Codec))
	}
	if cfg.Conn == nil {
		return nil, fmt.Errorf("%w: mode=processes needs a NATS connection", ErrInvalidConfig)
	}
	switch cfg.Dispatch {
	case "", DispatchRequest:
		p, err := NewProcesses(cfg.Conn, cfg.Job, cfg.Expect, cfg.Log)
		if p != nil {
			p.shm = cfg.Shm
		}
		return asBackend(p, err)
	case DispatchJetStream:
		return asBackend(NewJetStream(cfg.Conn, cfg.Job, cfg.JobID, cfg.Log))
	}
	return nil, fmt.Errorf("%w: dispatch=%s: must be %s or %s", ErrInvalidConfig, cfg.Dispatch, DispatchRequest, DispatchJetStream)
}

// asBackend returns a nil Backend on error, not a Backend holding a nil
// pointer, which would compare != nil.
func asBackend[B Backend](b B, err error) (Backend, error) {
	if err != nil {
		return nil, err
	}
	return b, nil
}
