package coordinator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/workload"
	"golang.org/x/sync/errgroup"
)

// Local computes batches inside this process on a fixed number of lanes
// (goroutines). It implements the serial, goroutines, gil and codec modes.
type Local struct {
	mode  string
	lanes int
	codec proto.Codec // codec mode only
	gil   sync.Mutex  // gil mode only: held while computing
}

// NewLocal returns the in-process backend for mode with the given lanes
// (serial always has one).
func NewLocal(mode string, lanes int, codecName string) (*Local, error) {
	l := &Local{mode: mode, lanes: lanes}
	switch mode {
	case ModeSerial:
		l.lanes = 1
	case ModeGoroutines, ModeGIL:
	case ModeCodec:
		c, err := proto.NewCodec(codecName, proto.Limits{})
		if err != nil {
			return nil, err
		}
		l.codec = c
	default:
		return nil, fmt.Errorf("%w: mode=%s: not an in-process mode", ErrInvalidConfig, mode)
	}
	if l.lanes < 1 {
		return nil, fmt.Errorf("%w: workers=%d: must be at least 1", ErrInvalidConfig, lanes)
	}
	return l, nil
}

// NewCodecMode returns codec mode on lanes goroutines round-tripping every
// batch and result through c, e.g. a proto.Compressed codec.
func NewCodecMode(lanes int, c proto.Codec) (*Local, error) {
	if lanes < 1 {
		return nil, fmt.Errorf("%w: workers=%d: must be at least 1", ErrInvalidConfig, lanes)
	}
	return &Local{mode: ModeCodec, lanes: lanes, codec: c}, nil
}

// Name is the mode.
func (l *Local) Name() string { return l.mode }

// WorkerCount is the number of lanes.
func (l *Local) WorkerCount() int { return l.lanes }

// Run serves q on l.lanes goroutines.
func (l *Local) Run(ctx context.Context, q *Queue) error {
	g, ctx := errgroup.WithContext(ctx)
	for i := range l.lanes {
		name := fmt.Sprintf("%s-%d", l.mode, i)
		g.Go(func() error { return l.lane(ctx, q, name) })
	}
	return g.Wait()
}

func (l *Local) lane(ctx context.Context, q *Queue, name string) error {
	var wls workload.Cache
	defer wls.Close() // workloads holding resources (io.Closer) let go with their lane
	var lane codecLane
	var size outputSize
	for {
		t, err := q.Next(ctx)
		if err != nil {
			return err
		}
		wl, err := wls.Get(t.Batch.Workload, t.Batch.Params)
		if err != nil {
			return err
		}
		res := q.NewResult()
		res.BatchID, res.Attempt = t.Batch.ID, t.Batch.Attempt
		size.reserve(&res.Out, len(t.Batch.Docs))
		var tm Timing
		var out, in int
		switch {
		case l.codec != nil:
			tm, out, in, err = lane.roundTrip(l.codec, wl, &t.Batch, res)
		case l.mode == ModeGIL:
			start := time.Now()
			l.gil.Lock()
			res.Errs, err = workload.ComputeBatch(wl, t.Batch.Docs, &res.Out, res.Errs)
			l.gil.Unlock()
			tm.setCompute(time.Since(start), res.Out.Hop)
		default:
			start := time.Now()
			res.Errs, err = workload.ComputeBatch(wl, t.Batch.Docs, &res.Out, res.Errs)
			tm.setCompute(time.Since(start), res.Out.Hop)
		}
		if err != nil { // the batch failed as a whole: retried, as processes mode does
			q.Fail(t, err)
			continue
		}
		size.learn(&res.Out, len(t.Batch.Docs))
		q.Complete(t, Result{Res: res, Timing: tm, Worker: name, BytesOut: out, BytesIn: in})
	}
}

// outputSize remembers a lane's output per document, so an output without
// the room is allocated at its final size once. Growing it document by
// document instead cost the embed workload a fifth of its CPU in
// reallocation and copying (BenchmarkModes profile), a cost processes mode,
// whose decoder allocates exactly, does not pay.
type outputSize struct{ vecs, spans, data int } // per document, from the last batch

func (s *outputSize) reserve(o *workload.Output, docs int) {
	if n := s.vecs * docs; cap(o.Vecs) < n {
		o.Vecs = make([]float32, 0, n)
	}
	if n := s.spans*docs + docs; s.spans > 0 && cap(o.Spans) < n { // chunk counts vary by document
		o.Spans = make([]workload.Span, 0, n)
	}
	if n := s.data * docs; cap(o.Data) < n {
		o.Data = make([]byte, 0, n)
	}
}

func (s *outputSize) learn(o *workload.Output, docs int) {
	if docs > 0 {
		s.vecs, s.spans, s.data = len(o.Vecs)/docs, len(o.Spans)/docs, len(o.Data)/docs
	}
}

// codecLane round-trips a batch and its result through a codec in memory:
// everything processes mode does except the network.
type codecLane struct {
	bufB, bufR []byte
	b          proto.Batch
	mid        proto.Result
}

func (c *codecLane) roundTrip(codec proto.Codec, wl workload.Workload, b *proto.Batch, res *proto.Result) (Timing, int, int, error) {
	var tm Timing
	t0 := time.Now()
	var err error
	if c.bufB, err = codec.AppendBatch(c.bufB[:0], b); err != nil {
		return tm, 0, 0, err
	}
	t1 := time.Now()
	if err := codec.DecodeBatch(c.bufB, &c.b); err != nil {
		return tm, 0, 0, err
	}
	t2 := time.Now()
	c.mid.BatchID, c.mid.Attempt = c.b.ID, c.b.Attempt
	c.mid.Errs, err = workload.ComputeBatch(wl, c.b.Docs, &c.mid.Out, c.mid.Errs)
	if err != nil {
		return tm, 0, 0, err
	}
	t3 := time.Now()
	if c.bufR, err = codec.AppendResult(c.bufR[:0], &c.mid); err != nil {
		return tm, 0, 0, err
	}
	t4 := time.Now()
	if err := codec.DecodeResult(c.bufR, res); err != nil {
		return tm, 0, 0, err
	}
	t5 := time.Now()
	tm[StageEncode] = t1.Sub(t0)
	tm[StageWorkerDecode] = t2.Sub(t1)
	tm.setCompute(t3.Sub(t2), c.mid.Out.Hop)
	tm[StageWorkerEncode] = t4.Sub(t3)
	tm[StageDecode] = t5.Sub(t4)
	return tm, len(c.bufB), len(c.bufR), nil
}
