// Package coordinator runs a job: it reads documents from a corpus.Source,
// cuts them into batches, hands them to a Backend (serial, goroutines, gil,
// codec or worker processes over NATS), puts the results back in input
// order, writes each document exactly once to a sink.Writer and measures
// where the time went.
//
// It does not parse flags or config files (cmd/ferry does) and it does not
// start brokers or worker processes (broker, fleet and internal/spawn do).
package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/sink"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// ErrNoDocuments is returned when the input holds no documents.
var ErrNoDocuments = errors.New("coordinator: the input has no documents")

// ErrDocsFailed is returned (wrapped) when some documents failed for good;
// every other document was still written.
var ErrDocsFailed = errors.New("coordinator: some documents failed")

// Run runs one job of cfg over src on backend, writing results to out in
// input order. It returns the job's statistics even on error (partial on
// interrupt). Run does not close src or out: the caller opened them.
func Run(ctx context.Context, cfg Config, src corpus.Source, backend Backend, out sink.Writer) (*Stats, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	caps := capabilitiesOf(backend)
	if caps.limiter != nil && cfg.MaxBatchBytes == 0 {
		cfg.MaxBatchBytes = caps.limiter.MaxBatchBytes()
	}
	// A backend that must wait for its workers does so before the clock
	// starts: throughput is not worker start-up.
	if caps.readier != nil {
		if err := caps.readier.Ready(ctx); err != nil {
			st := &Stats{Mode: backend.Name()}
			if ctx.Err() != nil {
				return st, fmt.Errorf("interrupted after 0 documents: %w", ctx.Err())
			}
			return st, err
		}
	}
	largest := cfg.BatchSize
	if cfg.AutoBatch {
		largest = max(largest, cfg.MaxBatchSize)
	}
	window := int64(cfg.Window) * int64(largest)
	credit := semaphore.NewWeighted(window)
	col := newCollector(out, credit)
	col.progress = cfg.OnProgress
	todo := make(chan *Task)
	q := &Queue{cfg: cfg, todo: todo, col: col, done: col.done, halt: make(chan struct{}), wake: make(chan struct{}), batch: newBatcher(cfg)}

	// Shutdown order on an interrupt or a failure (gctx ends): stop reading
	// input and dispatching (halt), give the batches in flight StopGrace to
	// be answered and written, then cancel them (workCtx) and return what is
	// written. The backend runs on workCtx, not gctx, for that reason.
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	backendDone := make(chan struct{})
	var textBytes int64
	g.Go(func() error {
		defer close(todo)
		n, tb, err := produce(gctx, cfg, src, q, todo, credit)
		textBytes = tb
		if err != nil {
			return err
		}
		col.inputEnded(n)
		return nil
	})
	g.Go(func() error {
		defer close(backendDone)
		err := backend.Run(workCtx, q)
		if errors.Is(err, ErrDone) {
			err = nil
		}
		if err == nil {
			select { // a backend may only stop early when the job is done
			case <-q.done:
			case <-gctx.Done():
				err = gctx.Err()
			}
		}
		return err
	})
	g.Go(func() error {
		select {
		case <-backendDone:
			return nil
		case <-gctx.Done():
		}
		close(q.halt)
		grace := time.NewTimer(max(cfg.StopGrace, 0))
		defer grace.Stop()
		select {
		case <-backendDone:
		case <-grace.C:
		}
		cancelWork()
		return nil
	})
	err := g.Wait()
	wall := time.Since(start)
	if at := col.finishedAt(); !at.IsZero() {
		wall = at.Sub(start) // the job ends with its last write, not with the backend's teardown
	}
	st := col.snapshot(wall)
	st.Mode = backend.Name()
	if a, ok := q.batch.(*autoBatch); ok {
		st.AutoBatch, st.BatchSizes, st.BatchCPU = true, a.Steps(), a.batchCPU
	}
	st.TextBytes = textBytes
	st.Retries = q.retries.Load()
	st.Requeues = q.requeues.Load()
	st.Forged = q.forged.Load()
	if caps.resume != nil {
		st.Resumed = caps.resume.Resumed()
	}
	st.Splits = q.splits.Load()
	if caps.planes != nil {
		st.Planes = caps.planes.Planes()
	}
	if caps.workers != nil {
		st.Workers = caps.workers.WorkerCount()
	} else {
		st.Workers = len(st.Busy)
	}
	if col.err != nil {
		return &st, col.err
	}
	if err != nil {
		if ctx.Err() != nil {
			return &st, fmt.Errorf("interrupted after %d documents (input [0, %d) written, the rest not): %w", st.Docs, st.Prefix, ctx.Err())
		}
		return &st, err
	}
	if st.Docs == 0 && col.failedAll == 0 {
		return &st, ErrNoDocuments
	}
	if col.failedAll > 0 {
		return &st, fmt.Errorf("%w: %d of %d (first: document %d: %s)", ErrDocsFailed,
			col.failedAll, st.Docs+col.failedAll, st.Failed[0].Index, st.Failed[0].Error)
	}
	return &st, nil
}

// produce reads src into batches and sends them to todo, admitting each
// only when the window has credit for its documents: the coordinator never
// holds more than the window, whatever the input size.
func produce(ctx context.Context, cfg Config, src corpus.Source, q *Queue, todo chan<- *Task, credit *semaphore.Weighted) (docs, textBytes int64, err error) {
	total := src.Len()
	left := func() int64 {
		if total < 0 {
			return -1
		}
		return max(total-docs, 0)
	}
	var batch []string
	var batchBytes int
	first := int64(0)
	size := q.batch.Size(first, left())
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := credit.Acquire(ctx, int64(len(batch))); err != nil {
			return err
		}
		t := q.newTask(first, batch)
		select {
		case todo <- t:
		case <-ctx.Done():
			return ctx.Err()
		}
		first += int64(len(batch))
		size = q.batch.Size(first, left())
		batch, batchBytes = make([]string, 0, size), 0
		return nil
	}
	for {
		d, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return docs, textBytes, fmt.Errorf("read input: %w", err)
		}
		doc := d.Text
		if len(doc) > cfg.Limits.MaxDocBytes {
			return docs, textBytes, fmt.Errorf("%w: document %d has %d bytes, over max_doc_bytes=%d", ErrInvalidConfig, docs, len(doc), cfg.Limits.MaxDocBytes)
		}
		cost := len(doc) + 8 // msgpack str header and slack
		if cfg.MaxBatchBytes > 0 && cost+256 > cfg.MaxBatchBytes {
			return docs, textBytes, fmt.Errorf("document %d has %d bytes; a batch may not exceed %d bytes (half the broker's max_payload)", docs, len(doc), cfg.MaxBatchBytes)
		}
		if cfg.MaxBatchBytes > 0 && batchBytes+cost+256 > cfg.MaxBatchBytes {
			if err := send(); err != nil {
				return docs, textBytes, err
			}
		}
		batch = append(batch, doc)
		batchBytes += cost
		docs++
		textBytes += int64(len(doc))
		if len(batch) >= size {
			if err := send(); err != nil {
				return docs, textBytes, err
			}
		}
	}
	return docs, textBytes, send()
}
