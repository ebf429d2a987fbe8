package coordinator

import (
	"fmt"
	"sync"
	"time"

	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/sink"
	"golang.org/x/sync/semaphore"
)

// maxFailures bounds the failed documents kept for the report.
const maxFailures = 1000

// collector puts results back in input order, writes them once each,
// hashes them and accumulates the job's statistics.
type collector struct {
	out      sink.Writer
	progress func(int64)
	credit   *semaphore.Weighted // window credit, in documents

	mu        sync.Mutex
	next      int64 // first document not yet written
	total     int64 // documents in the input; -1 until the input ends
	pending   map[int64]piece
	hash      *Digest
	err       error // a sink error ends the job
	done      chan struct{}
	stages    [NumStages]samples
	busy      map[string]time.Duration
	stats     Stats
	failedAll int64
	doneAt    time.Time // when done was closed
	// written holds Results already written and hashed, so backends can
	// decode or compute the next ones into them: a 100-document embed
	// result is 150 KB, and allocating, zeroing and collecting one per
	// batch cost the coordinator about a third of its CPU in processes mode.
	written sync.Pool
}

type piece struct {
	first  int64
	res    *proto.Result
	failed []bool
}

func newCollector(out sink.Writer, credit *semaphore.Weighted) *collector {
	return &collector{
		out: out, credit: credit, total: -1,
		pending: map[int64]piece{}, hash: NewDigest(),
		done: make(chan struct{}), busy: map[string]time.Duration{},
	}
}

// isDone reports whether t's documents are already written or waiting to be.
func (c *collector) isDone(t *Task) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.Batch.First < c.next {
		return true
	}
	p, ok := c.pending[t.Batch.First]
	return ok && len(p.failed) >= len(t.Batch.Docs)
}

// discardIfDone counts a result for documents [first, first+n) as a
// duplicate, and reports true, when they are already written or waiting.
func (c *collector) discardIfDone(first int64, n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pending[first]
	if first+int64(n) <= c.next || (ok && len(p.failed) >= n) {
		c.stats.Dupes++
		return true
	}
	return false
}

// inputLen is the number of documents in the input, -1 until it has ended.
func (c *collector) inputLen() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// complete records r for t and reports whether it was a duplicate.
func (c *collector) complete(t *Task, r Result) (dupe bool) {
	n := len(t.Batch.Docs)
	failed := make([]bool, n)
	for _, e := range r.Res.Errs {
		failed[e.Doc] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.Batch.First < c.next || c.pending[t.Batch.First].res != nil {
		c.stats.Dupes++
		return true
	}
	for _, e := range r.Res.Errs {
		c.addFailure(t.Batch.First+int64(e.Doc), e.Msg)
	}
	c.stats.Batches++
	c.stats.BytesOut += int64(r.BytesOut)
	c.stats.BytesIn += int64(r.BytesIn)
	for s := range NumStages {
		if d := r.Timing[s]; d > 0 {
			c.stages[s].add(d)
		}
	}
	if r.Worker != "" {
		c.busy[r.Worker] += r.Timing.Busy()
	}
	c.pending[t.Batch.First] = piece{first: t.Batch.First, res: r.Res, failed: failed}
	c.flush()
	return false
}

// newResult returns an empty Result, reusing the buffers of one already written.
func (c *collector) newResult() *proto.Result {
	r, ok := c.written.Get().(*proto.Result)
	if !ok {
		return new(proto.Result)
	}
	r.Out.Reset()
	*r = proto.Result{Out: r.Out, Errs: r.Errs[:0]}
	return r
}

// fail records a single document that failed for good.
func (c *collector) fail(t *Task, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.Batch.First < c.next {
		return
	}
	c.addFailure(t.Batch.First, err.Error())
	res := &proto.Result{Errs: []proto.DocError{{Doc: 0, Msg: err.Error()}}}
	c.pending[t.Batch.First] = piece{first: t.Batch.First, res: res, failed: []bool{true}}
	c.flush()
}

func (c *collector) addFailure(index int64, msg string) {
	c.failedAll++
	if len(c.stats.Failed) < maxFailures {
		c.stats.Failed = append(c.stats.Failed, DocFailure{Index: index, Error: msg})
	}
}

// inputEnded records the number of documents once the producer is done.
func (c *collector) inputEnded(total int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total = total
	c.flush()
}

// flush writes every piece that continues the written prefix. Called with mu held.
func (c *collector) flush() {
	for c.err == nil {
		p, ok := c.pending[c.next]
		if !ok {
			break
		}
		delete(c.pending, c.next)
		n := len(p.failed)
		if fw, ok := c.out.(sink.FailureWriter); ok && len(p.res.Errs) > 0 {
			// Every failure by index, with its error: the report keeps maxFailures.
			if err := fw.WriteFailures(p.first, p.res.Errs); err != nil {
				c.err = fmt.Errorf("write failures: %w", err)
				break
			}
		}
		if err := c.out.Write(p.first, &p.res.Out, p.failed); err != nil {
			c.err = fmt.Errorf("write results: %w", err)
			break
		}
		c.hash.Add(&p.res.Out, p.failed)
		c.written.Put(p.res)
		for _, f := range p.failed {
			if !f {
				c.stats.Docs++
			}
		}
		c.next += int64(n)
		c.credit.Release(int64(n))
		if c.progress != nil {
			c.progress(c.next)
		}
		for k := range c.pending { // stale pieces a split made redundant
			if k < c.next {
				delete(c.pending, k)
			}
		}
	}
	if (c.total >= 0 && c.next >= c.total) || c.err != nil {
		select {
		case <-c.done:
		default:
			c.doneAt = time.Now()
			close(c.done)
		}
	}
}

// finishedAt is when the last document was written (zero if not yet).
func (c *collector) finishedAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.doneAt
}

// snapshot returns the statistics gathered so far.
func (c *collector) snapshot(wall time.Duration) Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Wall = wall
	s.Prefix = c.next
	for i := range NumStages {
		s.Stages[i] = c.stages[i].quantiles()
	}
	s.Busy = make(map[string]float64, len(c.busy))
	for w, b := range c.busy {
		s.Busy[w] = b.Seconds() / wall.Seconds()
	}
	s.Digest = c.hash.Sum()
	return s
}
