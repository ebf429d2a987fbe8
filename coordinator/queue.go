package coordinator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrylab/ferry/proto"
)

// ErrDone is returned by Queue.Next when every document has been written.
var ErrDone = errors.New("coordinator: job done")

// ErrStopped is returned by Queue.Next once the job is stopping (interrupt,
// input error): a backend finishes the batches it holds and returns.
var ErrStopped = errors.New("coordinator: job stopping")

// Task is one batch on its way through a backend.
type Task struct {
	Batch    proto.Batch
	attempts int       // sends that ended in a timeout or an error reply
	readyAt  time.Time // earliest re-send, for backoff
	fresh    bool      // admitted by the producer (holds window credit)
	// waited is how long the lane that took this task waited for it: a
	// per-batch cost no stage measures (hand-off, a producer running behind).
	waited time.Duration
}

// Queue hands batches to a backend's lanes and takes back their results. It
// owns the at-least-once policy: a failed batch is re-sent with backoff, a
// batch that keeps failing is halved until the bad documents are isolated,
// and a result whose documents are already done is discarded, so every
// document is written exactly once, in input order.
type Queue struct {
	cfg   Config
	todo  <-chan *Task // fresh batches from the producer; closed at end of input
	col   *collector
	done  chan struct{} // closed when every document is written
	halt  chan struct{} // closed when dispatch stops; see Run
	batch batcher       // sizes the producer's batches; told every completion

	mu       sync.Mutex
	retry    []*Task
	wake     chan struct{} // closed and replaced when retry changes
	ids      atomic.Uint64
	retries  atomic.Int64
	requeues atomic.Int64
	splits   atomic.Int64
	forged   atomic.Int64
	// width is the job's row width (widthOf), set by the first result with
	// a document that did not fail; 0 until then.
	width atomic.Uint64
	// perDoc is the measured compute time per document (EWMA, ns), from
	// which reply deadlines are derived.
	perDoc atomic.Int64
}

// Next returns the next batch to compute: a due retry first, else a fresh
// batch. It returns ErrDone when the job is finished, ErrStopped when
// dispatch has stopped and ctx.Err() when ctx is done.
func (q *Queue) Next(ctx context.Context) (*Task, error) {
	start := time.Now()
	t, err := q.next(ctx)
	if t != nil {
		t.waited = time.Since(start)
	}
	return t, err
}

func (q *Queue) next(ctx context.Context) (*Task, error) {
	for {
		select {
		case <-q.halt:
			return nil, ErrStopped
		default:
		}
		q.mu.Lock()
		now := time.Now()
		var wait time.Duration
		for i, t := range q.retry {
			if d := t.readyAt.Sub(now); d <= 0 {
				q.retry = append(q.retry[:i], q.retry[i+1:]...)
				q.mu.Unlock()
				if q.col.isDone(t) { // a duplicate already covered it
					continue
				}
				q.observe(EventSent, t)
				return t, nil
			} else if wait == 0 || d < wait {
				wait = d
			}
		}
		wake := q.wake
		q.mu.Unlock()

		t, err := q.wait(ctx, wake, wait)
		if t != nil {
			q.observe(EventSent, t)
		}
		if t != nil || err != nil {
			return t, err
		}
	}
}

// wait blocks for a fresh batch, a change to the retry list, the earliest
// retry's due time, the end of the job or ctx.
func (q *Queue) wait(ctx context.Context, wake <-chan struct{}, due time.Duration) (*Task, error) {
	var timer <-chan time.Time
	if due > 0 {
		tm := time.NewTimer(due)
		defer tm.Stop()
		timer = tm.C
	}
	select {
	case t, ok := <-q.todo:
		if ok {
			return t, nil
		}
		// The input has ended: a closed channel is always ready, so wait
		// without it or every idle lane spins until the job is done.
		select {
		case <-wake:
		case <-timer:
		case <-q.done:
			return nil, ErrDone
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case <-wake:
	case <-timer:
	case <-q.done:
		return nil, ErrDone
	case <-q.halt:
		return nil, ErrStopped
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return nil, nil
}

// NewResult returns a Result for a backend to compute or decode into; it
// reuses the buffers of results already written.
func (q *Queue) NewResult() *proto.Result { return q.col.newResult() }

// Done is closed when every document has been written.
func (q *Queue) Done() <-chan struct{} { return q.done }

// Stopped is closed when dispatch stops before the job is done: Next
// returns ErrStopped from then on, and the backend should return once the
// batches it holds are answered (their context ends after Config.StopGrace).
func (q *Queue) Stopped() <-chan struct{} { return q.halt }

// Timeout is the reply deadline for t: a fixed one if configured, else ten
// times the expected compute time, within the configured floor and ceiling.
func (q *Queue) Timeout(t *Task) time.Duration {
	if q.cfg.BatchTimeout > 0 {
		return q.cfg.BatchTimeout
	}
	per := q.perDoc.Load()
	if per == 0 {
		return q.cfg.TimeoutCeil
	}
	d := 10 * time.Duration(per) * time.Duration(len(t.Batch.Docs))
	return min(max(d, q.cfg.TimeoutFloor), q.cfg.TimeoutCeil)
}

// Result is a lane's answer for a Task.
type Result struct {
	Res      *proto.Result
	Timing   Timing
	Worker   string // who computed it, for busy fractions
	BytesOut int
	BytesIn  int
	Forged   int // messages dropped while waiting for it: they did not carry the batch's token
}

// DiscardForged counts n results dropped because they answered no batch in
// flight or did not carry its token (Stats.Forged).
func (q *Queue) DiscardForged(n int) {
	if n <= 0 {
		return
	}
	q.forged.Add(int64(n))
	if q.cfg.Observe != nil {
		for range n {
			q.cfg.Observe(Event{Kind: EventForged})
		}
	}
}

// Complete records a successful result for t. res.Res must not be used by
// the caller afterwards.
func (q *Queue) Complete(t *Task, r Result) {
	err := checkShape(t, r.Res)
	if err == nil {
		err = q.checkWidth(t, r.Res)
	}
	if err != nil {
		q.Fail(t, err)
		return
	}
	if n := len(t.Batch.Docs); n > 0 && r.Timing[StageCompute] > 0 {
		per := int64(r.Timing[StageCompute]) / int64(n)
		old := q.perDoc.Load()
		if old == 0 {
			q.perDoc.Store(per)
		} else {
			q.perDoc.Store((7*old + per) / 8)
		}
	}
	if q.batch != nil {
		q.batch.Observe(len(t.Batch.Docs), t.Batch.TextBytes()+r.Res.Out.Bytes(), r.Timing, t.waited)
	}
	failed := len(r.Res.Errs) // the collector may recycle r.Res once it has it
	if q.col.complete(t, r) {
		q.observe(EventDupe, t)
		return
	}
	if q.cfg.Observe != nil {
		q.cfg.Observe(Event{Kind: EventOK, Docs: len(t.Batch.Docs), Failed: failed, Timing: r.Timing, Worker: r.Worker})
	}
}

// Requeue puts t back without counting an attempt: the batch never reached
// a worker (no responders, the worker vanished), so nothing was computed
// twice. Stats counts these apart from retries.
func (q *Queue) Requeue(t *Task) {
	q.observe(EventRequeue, t)
	q.requeues.Add(1)
	q.push(t, 10*time.Millisecond)
}

// Fail records a failed attempt at t: re-send with backoff, or once
// MaxAttempts is reached split it in halves, or, for a single document,
// record that document as failed.
func (q *Queue) Fail(t *Task, err error) {
	if q.col.isDone(t) {
		q.observe(EventDupe, t)
		return
	}
	t.attempts++
	if t.attempts < q.cfg.MaxAttempts {
		q.observe(EventRetry, t)
		q.retries.Add(1)
		backoff := 25 * time.Millisecond << min(t.attempts-1, 6)
		q.push(t, backoff/2+rand.N(backoff/2+1))
		return
	}
	if len(t.Batch.Docs) == 1 {
		q.observe(EventFailed, t)
		q.col.fail(t, fmt.Errorf("after %d attempts: %w", t.attempts, err))
		return
	}
	q.observe(EventSplit, t)
	q.split(t)
}

// GiveUp records that t failed MaxAttempts times where the queue did not
// count (a durable queue's redeliveries): it is halved, or its single
// document recorded as failed, as Fail does on the last attempt.
func (q *Queue) GiveUp(t *Task, err error) {
	t.attempts = max(t.attempts, q.cfg.MaxAttempts-1)
	q.Fail(t, err)
}

// Split halves t and queues both halves, e.g. when its result is over the
// payload limit or it keeps failing.
func (q *Queue) Split(t *Task) {
	if len(t.Batch.Docs) < 2 {
		q.Fail(t, errors.New("single document cannot be split"))
		return
	}
	q.observe(EventSplit, t)
	q.split(t)
}

func (q *Queue) split(t *Task) {
	q.splits.Add(1)
	half := len(t.Batch.Docs) / 2
	a, b := q.newTask(t.Batch.First, t.Batch.Docs[:half]), q.newTask(t.Batch.First+int64(half), t.Batch.Docs[half:])
	a.fresh, b.fresh = false, false
	q.push(a, 0)
	q.push(b, 0)
}

func (q *Queue) push(t *Task, after time.Duration) {
	t.readyAt = time.Now().Add(after)
	q.mu.Lock()
	q.retry = append(q.retry, t)
	close(q.wake)
	q.wake = make(chan struct{})
	q.mu.Unlock()
}

func (q *Queue) newTask(first int64, docs []string) *Task {
	return &Task{fresh: true, Batch: proto.Batch{
		ID:       q.ids.Add(1),
		Workload: q.cfg.Workload,
		Params:   q.cfg.Params,
		First:    first,
		Docs:     docs,
	}}
}

// widthOf is r's row width as the queue keeps it: Dim and Stride, with the
// top bit set so that no width is 0.
func widthOf(r *proto.Result) uint64 {
	return 1<<63 | uint64(uint32(r.Out.Dim))<<32 | uint64(uint32(r.Out.Stride))
}

// checkWidth rejects a result whose rows are not as wide as the job's: the
// first result with a document that did not fail sets the width, and every
// later one must match it (a result whose documents all failed has no
// rows). A sink would otherwise write rows of two widths, or fail the job.
func (q *Queue) checkWidth(t *Task, r *proto.Result) error {
	if len(r.Errs) == len(t.Batch.Docs) {
		return nil
	}
	w := widthOf(r)
	if q.width.CompareAndSwap(0, w) {
		return nil
	}
	if job := q.width.Load(); job != w {
		return fmt.Errorf("batch %d: rows of dim %d and stride %d, the job's are %d and %d: %w",
			t.Batch.ID, r.Out.Dim, r.Out.Stride, uint32(job>>32), uint32(job), proto.ErrMalformed)
	}
	return nil
}

// checkShape rejects a result that does not answer t's send or whose
// columns do not match its batch, so a confused or hostile worker cannot
// corrupt the output: every count, index and range in it is checked
// against the batch before the collector uses it. (The token is checked
// where the result arrives: the Link, the JetStream result handler.)
func checkShape(t *Task, r *proto.Result) error {
	n := len(t.Batch.Docs)
	o := &r.Out
	id := t.Batch.ID
	bad := func(format string, a ...any) error {
		return fmt.Errorf("batch %d: %s: %w", id, fmt.Sprintf(format, a...), proto.ErrMalformed)
	}
	switch {
	case r.BatchID != id:
		return bad("the result answers batch %d", r.BatchID)
	case r.Attempt != t.Batch.Attempt:
		return bad("the result answers attempt %d, not %d", r.Attempt, t.Batch.Attempt)
	case len(o.Vecs) != n*o.Dim: // no vectors when Dim is 0
		return bad("%d floats for %d documents of dim %d", len(o.Vecs), n, o.Dim)
	case len(o.Ends) == 0 && len(o.Data) != n*o.Stride:
		return bad("%d data bytes for %d documents of %d", len(o.Data), n, o.Stride)
	case len(o.Ends) > 0 && (len(o.Ends) != n || o.Stride != 0):
		return bad("%d byte ends (stride %d) for %d documents", len(o.Ends), o.Stride, n)
	}
	// Spans in document order (the digest and the JSONL sink walk them so),
	// errors in strictly increasing order (each failed document once).
	prev := 0
	for _, s := range o.Spans {
		if int(s.Doc) >= n || int(s.Doc) < prev || s.Start > s.End {
			return bad("span %+v out of range or order", s)
		}
		prev = int(s.Doc)
	}
	prev = -1
	for _, e := range r.Errs {
		if int(e.Doc) >= n || int(e.Doc) <= prev {
			return bad("error for document %d of %d out of range or order", e.Doc, n)
		}
		prev = int(e.Doc)
	}
	return nil
}
