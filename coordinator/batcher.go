package coordinator

import (
	"math"
	"sync"
	"time"
)

// batcher decides how many documents go into each batch: the producer asks
// Size before it cuts a batch, the queue reports every completed batch to
// Observe. fixedBatch (batch_size) and autoBatch (--batch auto) are the two.
type batcher interface {
	// Size is the size of the batch that starts at document first; left is
	// the documents not yet batched, or -1 when the input length is unknown.
	Size(first, left int64) int
	// Observe is told each completed batch's size in documents and in
	// bytes (its texts and its result; 0 = unknown), its measured stages and
	// how long the lane waited for it.
	Observe(docs, bytes int, tm Timing, waited time.Duration)
}

func newBatcher(cfg Config) batcher {
	if !cfg.AutoBatch {
		return fixedBatch(cfg.BatchSize)
	}
	a := newAutoBatch(cfg.BatchSize, cfg.MaxBatchSize, cfg.Workers, cfg.OverheadTarget)
	a.batchCPU = max(cfg.BatchCPU, 0)
	return a
}

type fixedBatch int

func (f fixedBatch) Size(int64, int64) int                 { return int(f) }
func (fixedBatch) Observe(int, int, Timing, time.Duration) {}

// SizeStep is a change of batch size: from document First on, batches of Size.
type SizeStep struct {
	First int64 `json:"first"`
	Size  int   `json:"size"`
}

// maxSteps bounds the size trace kept for the report.
const maxSteps = 500

// batchFloor is a floor on the fixed per-batch cost: the queue, the
// collector's bookkeeping. In-process modes measure only compute and the
// lane's wait for its next batch, which can be near zero.
const batchFloor = 10 * time.Microsecond

// autoBatchTime is the compute per batch --batch auto grows batches to (up
// to the largest batch) once the overhead target is met: Dask's rule of
// thumb, tasks of 100 ms or more. The overhead the stages measure is not all
// a batch costs: on shared cores the broker and the coordinator take CPU
// from the workers for every batch, and a sweep on 2 cores shows processes
// throughput still rising between batches of 5 and 20 ms. Batches this long
// make any per-batch cost negligible, and the guided tail keeps them from
// starving workers at the end.
const autoBatchTime = 100 * time.Millisecond

// autoBatchBytes caps that growth by memory: a batch's texts and result
// together stay within about a core's L2 cache. Past it, in-process modes
// lose what the cache gave them: goroutines embed 8% slower at 1,024
// documents (1.9 MB) than at 64-256 (0.1-0.5 MB) in sweeps on 2 cores,
// while processes gain nothing past 256 documents.
const autoBatchBytes = 512 << 10

// autoBatch sizes batches from what completed batches measured. Per batch
// the time is a + k*b overhead plus c*b compute, b documents; only a can be
// amortized, so the batch size that holds a against the compute at the
// target T, a / (a + c*b) = T, is b = a(1-T) / (T*c). That is the least size
// it uses; it grows batches further to batchTime of compute each, b =
// batchTime / c, but to no more than batchBytes of texts and results, where
// that is larger. (k, the per-document
// overhead, no batch size removes; counting it would only shrink batches,
// and a noisy slope would make them wander.) a and k come from a decayed
// least-squares fit of each batch's non-compute stages against its size
// (k = 0 while all sizes seen are equal), c from an average of compute per
// document. The overhead of a batch is its non-compute stages plus the
// time its lane waited for it; transport counts at its least value seen: the rest of it is
// waiting behind another batch in the worker's queue, which pipelining
// makes free.
//
// Given the CPU of one batch's hop (Config.BatchCPU: ferry run and ferry
// sweep measure it with a raw NATS echo of 64 bytes through their local
// broker before the run), a is that CPU instead: what every batch costs
// the broker and both ends whatever its size, the fixed part a sweep's CPU
// fit finds. The stage times' fixed part on an idle core is mostly
// waiting, which costs nothing; on busy cores it is mostly other
// processes' CPU. An online fit of the processes' CPU clocks against batch
// size cannot stand in for the echo: batches in flight across a window's
// edges and preempted compute moved its fixed part from 0.01 to 8 ms
// within one half-second embed run on 2 cores.
//
// Near the end of the input (when its length is known) it cuts guided
// batches, ceil(left / 2W) for W workers, so the last batches spread over
// every worker instead of leaving one computing a full batch while the
// others idle.
type autoBatch struct {
	target     float64
	min, max   int
	workers    int
	batchTime  time.Duration // compute per batch to grow to; 0 = the overhead model alone
	batchBytes float64       // texts and results per batch to grow to at most; 0 = no cap
	batchCPU   time.Duration // Config.BatchCPU: the fixed part a, measured; 0 = fitted from the stages
	bytes      float64       // decayed sum of batch bytes
	byteDocs   float64       // decayed sum of the documents of batches whose bytes are known

	mu      sync.Mutex
	size    int           // steady-state size
	perItem float64       // compute ns per document: decayed compute over decayed documents
	compute float64       // decayed sum of compute ns
	docs    float64       // decayed sum of documents
	hop     time.Duration // least transport time seen: the hop without queueing
	// decayed sums for the fit of overhead ns against batch size
	sw, sx, sy, sxx, sxy float64
	steps                []SizeStep
	last                 int
	tail                 bool // cutting guided batches: the steady size no longer moves
}

func newAutoBatch(start, maxSize, workers int, target float64) *autoBatch {
	return &autoBatch{target: target, min: 1, max: max(maxSize, 1), workers: max(workers, 1), size: min(max(start, 1), max(maxSize, 1)),
		batchTime: autoBatchTime, batchBytes: autoBatchBytes}
}

func (a *autoBatch) Observe(docs, bytes int, tm Timing, waited time.Duration) {
	if docs <= 0 || tm[StageCompute] <= 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	// The wait in the worker's queue behind the batch it is computing
	// (pipelining) costs no throughput, and from a worker that does not
	// send it the transport stage includes it: the least transport seen is
	// the hop itself.
	if hop := tm[StageTransport]; hop > 0 && (a.hop == 0 || hop < a.hop) {
		a.hop = hop
	}
	over := a.hop + waited
	for s := range NumStages {
		if s != StageCompute && s != StageTransport && s != StageQueue {
			over += tm[s]
		}
	}
	// Decayed sums, so a batch counts by its size and a preempted one
	// moves the estimate little.
	const decay = 0.95
	a.compute = decay*a.compute + float64(tm[StageCompute])
	a.docs = decay*a.docs + float64(docs)
	a.perItem = a.compute / a.docs
	if bytes > 0 {
		a.bytes = decay*a.bytes + float64(bytes)
		a.byteDocs = decay*a.byteDocs + float64(docs)
	}
	x, y := float64(docs), float64(over)
	a.sw = decay*a.sw + 1
	a.sx = decay*a.sx + x
	a.sy = decay*a.sy + y
	a.sxx = decay*a.sxx + x*x
	a.sxy = decay*a.sxy + x*y
	fixed, _ := a.fitLocked()
	if a.batchCPU > 0 {
		fixed = float64(a.batchCPU)
	}
	grow := float64(a.batchTime) / a.perItem
	if a.batchBytes > 0 && a.bytes > 0 {
		grow = min(grow, a.batchBytes/(a.bytes/a.byteDocs))
	}
	want := max(fixed*(1-a.target)/(a.target*a.perItem), grow)
	// Keep the size while the model is within 15% of it, and move at most
	// 2x per batch, so noise cannot make the size wander or swing.
	if a.tail {
		return // guided tail batches are small by design; the steady size stays
	}
	cur, ceil := float64(a.size), math.Ceil(want)
	if (want >= 0.87*cur && want <= 1.15*cur) || math.Abs(ceil-cur) <= 1 {
		return
	}
	next := min(max(int(ceil), a.size/2, a.min), a.size*2, a.max)
	a.size = max(next, 1)
}

// fitLocked returns the fixed (a) and per-document (k) overhead in ns.
func (a *autoBatch) fitLocked() (fixed, perDoc float64) {
	mx, my := a.sx/a.sw, a.sy/a.sw
	vx := a.sxx/a.sw - mx*mx
	if vx > 1e-6*mx*mx+1e-9 {
		perDoc = max((a.sxy/a.sw-mx*my)/vx, 0)
	}
	fixed = max(my-perDoc*mx, float64(batchFloor))
	return fixed, perDoc
}

func (a *autoBatch) Size(first, left int64) int {
	if left == 0 {
		return 1 // the input is done; nothing is left to size
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.size
	if left > 0 {
		guided := int((left + int64(2*a.workers) - 1) / int64(2*a.workers))
		a.tail = a.tail || guided < a.size
		b = int(min(int64(min(b, max(guided, a.size/8, 1))), left))
	}
	if b != a.last && len(a.steps) < maxSteps {
		a.steps = append(a.steps, SizeStep{First: first, Size: b})
	}
	a.last = b
	return b
}

// Steps is the trace of sizes chosen, in input order.
func (a *autoBatch) Steps() []SizeStep {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]SizeStep(nil), a.steps...)
}
