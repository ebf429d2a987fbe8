package llm

import (
	"context"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrylab/ferry/internal/quantile"
	"golang.org/x/sync/errgroup"
)

// Stats measures one Run. Latencies are per call, retries and backoff
// included, over every call whether it succeeded or not.
type Stats struct {
	Calls          int64         // calls finished, failed ones included
	Errors         int64         // calls that returned an error
	Retries        int64         // attempts beyond each call's first
	Wall           time.Duration // Run's wall time
	LatencyP50     time.Duration // median call latency (nearest rank, internal/quantile)
	LatencyP99     time.Duration // 99th percentile call latency (nearest rank; from a uniform sample past 65,536 calls)
	InFlightPeak   int64         // most calls in flight at once
	SerialEstimate time.Duration // sum of call latencies: what a serial loop would have taken
	CallsPerSec    float64       // Calls / Wall
}

// Speedup is SerialEstimate / Wall: what concurrency bought over a serial loop.
func (s Stats) Speedup() float64 {
	if s.Wall <= 0 {
		return 0
	}
	return float64(s.SerialEstimate) / float64(s.Wall)
}

// Run calls c.Complete for every (index, prompt) that prompts yields, at most
// concurrency at a time (<= 0 means the client's Concurrency), and returns
// when all calls have finished. prompts is a sequence rather than a slice so
// a caller can stream prompts from a file; pass slices.All(ps) for a slice.
//
// onResult, if not nil, gets each call's index, completion and error as calls
// finish (so not in index order). Calls to it are serialized, never
// concurrent, so it may append to a slice or write a file without a lock; it
// should be quick, since a slow one holds up every finishing call.
//
// A failed call is counted in Stats and passed to onResult, never fatal. Run
// returns ctx's error if ctx ended before every prompt was called; Stats then
// covers the calls made, which fail fast because they share ctx.
func Run(ctx context.Context, c *Client, prompts iter.Seq2[int, string], concurrency int, onResult func(i int, comp Completion, err error)) (Stats, error) {
	if concurrency <= 0 {
		concurrency = c.cfg.Concurrency
	}
	var (
		g              errgroup.Group // not WithContext: one call's failure must not cancel the others
		inFlight, peak atomic.Int64
		mu             sync.Mutex // guards rec and serializes onResult
		rec            recorder
	)
	g.SetLimit(concurrency)
	start := time.Now()
	for i, prompt := range prompts {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error { // blocks while concurrency calls are in flight
			peakMax(&peak, inFlight.Add(1))
			comp, err := c.Complete(ctx, prompt)
			inFlight.Add(-1)
			mu.Lock()
			defer mu.Unlock()
			rec.add(comp, err)
			if onResult != nil {
				onResult(i, comp, err)
			}
			return nil
		})
	}
	_ = g.Wait() // every goroutine returns nil; failures are in rec
	s := rec.stats(time.Since(start))
	s.InFlightPeak = peak.Load()
	return s, ctx.Err()
}

// peakMax raises peak to v if v is higher.
func peakMax(peak *atomic.Int64, v int64) {
	for {
		p := peak.Load()
		if v <= p || peak.CompareAndSwap(p, v) {
			return
		}
	}
}

// recorder accumulates per-call results; the caller locks it. Latencies
// go into a quantile.Stream, so memory stays flat however many calls a run
// makes.
type recorder struct {
	calls, errors, retries int64
	latency                quantile.Stream[time.Duration]
}

func (r *recorder) add(comp Completion, err error) {
	r.calls++
	if err != nil {
		r.errors++
	}
	r.retries += int64(max(comp.Attempts-1, 0))
	r.latency.Add(comp.Latency)
}

func (r *recorder) stats(wall time.Duration) Stats {
	s := Stats{
		Calls: r.calls, Errors: r.errors, Retries: r.retries, Wall: wall,
		LatencyP50: r.latency.Quantile(0.50), LatencyP99: r.latency.Quantile(0.99),
		SerialEstimate: r.latency.Sum(),
	}
	if wall > 0 {
		s.CallsPerSec = float64(r.calls) / wall.Seconds()
	}
	return s
}
