// Package pipeline runs the hybrid row of the multiprocessing-vs-asyncio
// decision matrix: chunk documents (CPU, on any coordinator backend:
// goroutines or worker processes), summarise each chunk with one LLM call
// (I/O, concurrent goroutines in this process), and merge each document's
// summaries in order (CPU). The stages are streamed, so all three run at
// once in bounded memory, and Run measures how much the CPU and I/O stages
// overlapped.
//
// Python needs asyncio plus a process pool for this shape; in Go it is
// goroutines for the I/O and, optionally, processes for the CPU. This package
// wires existing parts (coordinator, llm, workload) and adds no workload of
// its own. It does not start brokers, workers or mock servers (cmd/ferry does).
package pipeline

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/lab/llm"
	"github.com/ferrylab/ferry/sink"
	"github.com/ferrylab/ferry/workload"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// ErrDocsFailed is returned (wrapped) when some documents failed in a
// stage; every other document was still merged.
var ErrDocsFailed = errors.New("pipeline: some documents failed")

// errChunkFailed marks a document the chunk stage could not process; the
// coordinator's Stats.Failed holds its error.
var errChunkFailed = errors.New("chunk stage failed (see the chunk stage's failures)")

// maxFailures bounds the failed documents kept for the report.
const maxFailures = 100

// Config is one pipeline run. The zero value of every field is its default.
type Config struct {
	// Chunk is the chunk stage's job (batch size, workers, chunk params,
	// limits, ...); its Workload is always ChunkWorkload.
	Chunk coordinator.Config
	// ChunkWorkload is the chunk stage's workload; "" = chunk. Another
	// must produce chunk's spans (the tests' poison wraps chunk).
	ChunkWorkload string
	// Concurrency bounds the LLM calls in flight; 0 = 256.
	Concurrency int
	// Window bounds the documents past the chunk stage and not yet merged
	// in order, and so the memory the I/O and merge stages hold; the chunk
	// stage waits when it is full. 0 = 4 x Concurrency.
	Window int
	// Prompt builds a chunk's prompt; nil = DefaultPrompt.
	Prompt func(chunk string) string
	// MergeDim is the width of the merged summary's embedding; 0 = 384.
	MergeDim int
	// OnDoc, if set, gets every document's result in input order, from one
	// goroutine; an error from it ends the run.
	OnDoc func(Doc) error
}

// DefaultPrompt asks for a one-sentence summary of chunk.
func DefaultPrompt(chunk string) string {
	return "Summarise this passage in one sentence.\n\n" + chunk
}

func (c Config) withDefaults() Config {
	c.Chunk.Workload = cmp.Or(c.ChunkWorkload, "chunk")
	if c.Concurrency == 0 {
		c.Concurrency = 256
	}
	if c.Window == 0 {
		c.Window = 4 * c.Concurrency
	}
	if c.Prompt == nil {
		c.Prompt = DefaultPrompt
	}
	return c
}

func (c Config) validate() error {
	bad := func(key string, v any, why string) error {
		return fmt.Errorf("%w: %s=%v: %s", coordinator.ErrInvalidConfig, key, v, why)
	}
	switch {
	case c.Concurrency < 0:
		return bad("concurrency", c.Concurrency, "must be positive")
	case c.Window < 0:
		return bad("window", c.Window, "must be positive")
	}
	if _, err := workload.New("embed", workload.Params{Dim: c.MergeDim}); err != nil {
		return bad("dim", c.MergeDim, err.Error())
	}
	return nil
}

// Doc is one document's result.
type Doc struct {
	Index   int64  // position in the input, from 0
	Chunks  int    // chunks, and so LLM calls, it took
	Summary string // the chunk summaries in chunk order, one per line
	Err     error  // nil = merged; else why the document failed
}

// Record is a Doc as one line of JSON: ferry pipeline --out writes one per
// document, in input order, through a sink.JSONLines.
type Record struct {
	Index   int64  `json:"index"`
	Chunks  int    `json:"chunks"`
	Summary string `json:"summary,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Record returns d as a Record: its error as text.
func (d Doc) Record() Record {
	r := Record{Index: d.Index, Chunks: d.Chunks, Summary: d.Summary}
	if d.Err != nil {
		r.Error = d.Err.Error()
	}
	return r
}

// Stage is what one stage did.
type Stage struct {
	Name  string // chunk, llm or merge
	CPU   bool   // a CPU stage (chunk, merge) rather than I/O (llm)
	Items int64  // documents (chunk, merge) or calls (llm) taken in
	// Active is the time the stage held at least one item: taken in and not
	// yet handed on, whether computing, waiting for a reply or waiting to
	// hand on.
	Active time.Duration
	// Work is the time items spent being worked on, summed: compute time
	// over all workers (chunk), call latencies (llm; a serial loop's time),
	// merge time (merge). Work > Active means the stage ran items in parallel.
	Work time.Duration
	// First is when the stage took in its first item, End when it last
	// went idle, both from the start of the run.
	First, End time.Duration
}

// Stats is what one pipeline run measured.
type Stats struct {
	Mode     string
	Workers  int // the chunk stage's lanes or worker processes
	Wall     time.Duration
	Docs     int64 // documents merged
	Failed   int64 // documents that failed in some stage
	Failures []coordinator.DocFailure
	Chunks   int64 // chunks produced, each one LLM call
	Stages   []Stage
	// CPUActive is the time a CPU stage (chunk or merge) held work,
	// IOActive the time the I/O stage did, Both the time both did at once.
	CPUActive, IOActive, Both time.Duration
	Chunk                     *coordinator.Stats // the chunk stage's own statistics
	LLM                       llm.Stats          // the I/O stage's calls
	Tally                     llm.Tally          // the calls' errors by kind and tokens
	// Digest is a SHA-256 over every document's merged result in input
	// order: equal digests mean identical results.
	Digest string
}

// Overlap is the share of the shorter of the CPU and I/O activities that
// ran while the other was active: Both / min(CPUActive, IOActive). 0 means
// the stages ran one after the other, 1 that the shorter ran entirely
// within the longer. When the stages leave no idle gap it equals the
// (sum of stage activity - wall) / min(stage activity) of a Gantt chart.
func (s *Stats) Overlap() float64 {
	m := min(s.CPUActive, s.IOActive)
	if m <= 0 {
		return 0
	}
	return float64(s.Both) / float64(m)
}

// doc is a document between the chunk stage and the merge. Its fields
// are written by the sink, then only by onResult (which Run serializes),
// then read by the merge; channel sends order the hand-offs.
type doc struct {
	index     int64
	summaries []string
	left      int // calls not yet answered
	err       error
}

// call is one chunk on its way to the LLM.
type call struct {
	d      *doc
	seq    int
	prompt string
}

// run is one Run's shared state.
type run struct {
	cfg    Config
	ctx    context.Context // the run's group context
	track  *tracker
	credit *semaphore.Weighted // Window, in documents
	calls  chan call
	merges chan *doc

	mu      sync.Mutex
	texts   map[int64]string // documents read and not yet chunked, by index
	read    int64            // documents read
	pending map[int]call     // calls handed to llm.Run, by call id
	callID  int
	chunks  int64

	tally llm.Tally // onResult only
}

// Run runs the pipeline over src, chunking on backend and calling client.
// It returns the statistics even on error (partial on interrupt).
func Run(ctx context.Context, cfg Config, src corpus.Source, backend coordinator.Backend, client *llm.Client) (*Stats, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	r := &run{
		cfg: cfg, ctx: gctx, track: newTracker(start), credit: semaphore.NewWeighted(int64(cfg.Window)),
		calls:  make(chan call, cfg.Concurrency),
		merges: make(chan *doc, cfg.Window), // never blocks: each queued document holds Window credit
		texts:  map[int64]string{}, pending: map[int]call{},
	}
	var (
		chunkStats *coordinator.Stats
		llmStats   llm.Stats
		merged     mergeResult
		chunkDone  = make(chan struct{})
	)
	// Shutdown order: the chunk stage ends and closes calls; llm.Run
	// answers every call and returns; then merges is closed and the merge
	// drains it. On an error the group's context makes each stage end early.
	g.Go(func() error {
		defer close(chunkDone)
		defer close(r.calls) // the sink, its only sender, has returned
		st, err := coordinator.Run(gctx, cfg.Chunk, textSource{src, r}, backend, sink.WriteFunc(r.Write))
		chunkStats = st
		if errors.Is(err, coordinator.ErrDocsFailed) {
			return nil // each failed document went to the merge as failed
		}
		return err
	})
	g.Go(func() error {
		// Run's only error is the context's, whose cause another stage returns.
		llmStats, _ = llm.Run(gctx, client, r.prompts(), cfg.Concurrency, r.onResult)
		<-chunkDone // the sink also sends to merges
		close(r.merges)
		return nil
	})
	g.Go(func() error {
		var err error
		merged, err = r.merge()
		return err
	})
	err := g.Wait()

	st := r.stats(time.Since(start), chunkStats, llmStats, merged)
	if chunkStats != nil {
		st.Mode, st.Workers = chunkStats.Mode, chunkStats.Workers
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return st, fmt.Errorf("interrupted after %d documents: %w", st.Docs, ctx.Err())
	case err != nil:
		return st, err
	case st.Failed > 0:
		f := st.Failures[0]
		return st, fmt.Errorf("%w: %d of %d (first: document %d: %s)", ErrDocsFailed, st.Failed, st.Failed+st.Docs, f.Index, f.Error)
	}
	return st, nil
}

// textSource keeps each document's text for the sink, which gets only
// the chunk spans, and counts documents into the chunk stage.
type textSource struct {
	corpus.Source
	r *run
}

func (s textSource) Next() (corpus.Doc, error) {
	d, err := s.Source.Next()
	if err != nil {
		return d, err
	}
	s.r.mu.Lock()
	s.r.texts[s.r.read] = d.Text
	s.r.read++
	s.r.mu.Unlock()
	s.r.track.add(stageChunk, 1)
	return d, nil
}

// Len is -1 whatever src knows: the chunk stage has always cut its batches
// without a known end.
func (s textSource) Len() int64 { return -1 }

// Write is the chunk stage's sink: it gets chunk spans in input order and
// hands each chunk to the LLM stage (a document without chunks straight
// to the merge). It blocks while Window documents are downstream, which
// holds up the chunk stage: that is the pipeline's backpressure.
func (r *run) Write(first int64, out *workload.Output, failed []bool) error {
	si := 0
	for i, f := range failed {
		idx := first + int64(i)
		r.mu.Lock()
		text := r.texts[idx]
		delete(r.texts, idx)
		r.mu.Unlock()
		if err := r.credit.Acquire(r.ctx, 1); err != nil {
			return err
		}
		d := &doc{index: idx}
		var parts []string
		for ; si < len(out.Spans) && int(out.Spans[si].Doc) <= i; si++ {
			sp := out.Spans[si]
			if int(sp.Doc) < i {
				continue
			}
			if int(sp.End) > len(text) {
				d.err = fmt.Errorf("chunk span %d..%d outside the document's %d bytes", sp.Start, sp.End, len(text))
				continue
			}
			parts = append(parts, text[sp.Start:sp.End])
		}
		switch {
		case f:
			d.err = errChunkFailed
		case d.err == nil && len(parts) > 0:
			d.summaries, d.left = make([]string, len(parts)), len(parts)
			r.mu.Lock()
			r.chunks += int64(len(parts))
			r.mu.Unlock()
			for seq, p := range parts {
				select {
				case r.calls <- call{d: d, seq: seq, prompt: r.cfg.Prompt(p)}:
				case <-r.ctx.Done():
					return r.ctx.Err()
				}
			}
			r.track.add(stageChunk, -1)
			continue
		}
		r.merges <- d
		r.track.add(stageChunk, -1)
	}
	return nil
}

// prompts feeds llm.Run from the calls channel until the chunk stage is
// done or the run's context ends.
func (r *run) prompts() iter.Seq2[int, string] {
	return func(yield func(int, string) bool) {
		for {
			var c call
			var ok bool
			select {
			case c, ok = <-r.calls:
			case <-r.ctx.Done():
				return
			}
			if !ok {
				return
			}
			r.mu.Lock()
			id := r.callID
			r.callID++
			r.pending[id] = c
			r.mu.Unlock()
			r.track.add(stageLLM, 1)
			if !yield(id, c.prompt) {
				return
			}
		}
	}
}

// onResult files a call's summary with its document, and sends the
// document to the merge when its last call is answered. llm.Run
// serializes calls to it.
func (r *run) onResult(id int, comp llm.Completion, err error) {
	r.mu.Lock()
	c := r.pending[id]
	delete(r.pending, id)
	r.mu.Unlock()
	r.track.add(stageLLM, -1)
	r.tally.Add(id, comp, err)
	d := c.d
	if err != nil {
		if d.err == nil {
			d.err = fmt.Errorf("chunk %d: %w", c.seq, err)
		}
	} else {
		d.summaries[c.seq] = comp.Text
	}
	if d.left--; d.left == 0 {
		r.merges <- d
	}
}

// mergeResult is what the merge stage measured.
type mergeResult struct {
	docs, failed int64
	failures     []coordinator.DocFailure
	work         time.Duration
	digest       string
}

// merge joins each document's summaries in chunk order and embeds the
// result (the CPU work), then releases documents in input order: to the
// digest, to OnDoc, and their Window credit.
func (r *run) merge() (mergeResult, error) {
	var res mergeResult
	emb, err := workload.New("embed", workload.Params{Dim: r.cfg.MergeDim})
	if err != nil {
		return res, err
	}
	type done struct {
		doc  Doc
		hash [sha256.Size]byte
	}
	var (
		out     workload.Output
		ready   = map[int64]done{}
		next    int64
		digest  = sha256.New()
		failErr error
	)
	for d := range r.merges {
		r.track.add(stageMerge, 1)
		t0 := time.Now()
		m := done{doc: Doc{Index: d.index, Chunks: len(d.summaries), Err: d.err}}
		if d.err == nil {
			m.doc.Summary = strings.Join(d.summaries, "\n")
			out.Reset()
			if err := emb.Process([]string{m.doc.Summary}, &out); err != nil {
				m.doc.Err = fmt.Errorf("merge: %w", err)
			} else {
				m.hash = hashResult(out.Vecs, m.doc.Summary)
			}
		}
		res.work += time.Since(t0)
		r.track.add(stageMerge, -1)
		ready[d.index] = m
		for {
			m, ok := ready[next]
			if !ok {
				break
			}
			delete(ready, next)
			if m.doc.Err != nil {
				digest.Write([]byte{0xff})
				res.failed++
				if len(res.failures) < maxFailures {
					res.failures = append(res.failures, coordinator.DocFailure{Index: m.doc.Index, Error: m.doc.Err.Error()})
				}
			} else {
				digest.Write(m.hash[:])
				res.docs++
			}
			if r.cfg.OnDoc != nil && failErr == nil {
				failErr = r.cfg.OnDoc(m.doc)
			}
			r.credit.Release(1)
			next++
		}
		if failErr != nil {
			// No sender blocks on merges (each queued document holds
			// credit that is never released now), so stop here; the
			// error cancels the other stages.
			return res, fmt.Errorf("pipeline: write result: %w", failErr)
		}
	}
	res.digest = hex.EncodeToString(digest.Sum(nil))
	return res, nil
}

// hashResult hashes a merged document: its embedding (little-endian
// float32) and its summary text.
func hashResult(vec []float32, summary string) [sha256.Size]byte {
	h := sha256.New()
	var b [4]byte
	for _, v := range vec {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
		h.Write(b[:])
	}
	h.Write([]byte(summary))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// stats assembles the run's figures once every stage has ended.
func (r *run) stats(wall time.Duration, chunk *coordinator.Stats, calls llm.Stats, m mergeResult) *Stats {
	t := r.track
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advance(time.Now())
	st := &Stats{
		Wall: wall, Docs: m.docs, Failed: m.failed, Failures: m.failures, Chunks: r.chunks,
		CPUActive: t.cpu, IOActive: t.io, Both: t.both,
		Chunk: chunk, LLM: calls, Tally: r.tally, Digest: m.digest,
	}
	var chunkWork time.Duration
	if chunk != nil {
		for _, b := range chunk.Busy {
			chunkWork += time.Duration(b * float64(chunk.Wall))
		}
		why := map[int64]string{}
		for _, f := range chunk.Failed {
			why[f.Index] = "chunk: " + f.Error
		}
		for i, f := range st.Failures {
			if w, ok := why[f.Index]; ok && f.Error == errChunkFailed.Error() {
				st.Failures[i].Error = w
			}
		}
	}
	work := [numStages]time.Duration{chunkWork, calls.SerialEstimate, m.work}
	for s := range numStages {
		st.Stages = append(st.Stages, Stage{
			Name: stageNames[s], CPU: s != stageLLM, Items: t.items[s],
			Active: t.active[s], Work: work[s], First: max(t.first[s], 0), End: t.end[s],
		})
	}
	return st
}
