package workload

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// DocError is a failure of one document of a batch.
type DocError struct {
	Doc uint32 `msgpack:"doc"` // position within the batch
	Msg string `msgpack:"msg"`
}

// Compute runs wl over docs into out, the same way in every execution
// mode, and returns the documents that failed, appended to errs[:0]. A
// panic is recovered: the batch is then run one document at a time so only
// the documents that panic fail; their rows are zero. One bad document
// never fails a batch. A batch that fails as a whole (ErrBatchFailed) has
// every document failed: callers that can retry it use ComputeBatch.
func Compute(wl Workload, docs []string, out *Output, errs []DocError) []DocError {
	errs, err := ComputeBatch(wl, docs, out, errs)
	if err != nil {
		out.Reset()
		for i := range docs {
			errs = append(errs, DocError{Doc: uint32(i), Msg: err.Error()})
		}
	}
	return errs
}

// ComputeBatch is Compute for callers that can retry a batch elsewhere
// (a worker, the coordinator's lanes): when wl fails the batch as a whole
// (an error wrapping ErrBatchFailed, like an exec child that crashed or
// hung) it returns that error, not documents failed one by one.
func ComputeBatch(wl Workload, docs []string, out *Output, errs []DocError) ([]DocError, error) {
	out.Reset()
	errs = errs[:0]
	err := safeProcess(wl, docs, out)
	var failed DocErrors
	switch {
	case err == nil:
		return errs, nil
	case errors.Is(err, ErrBatchFailed):
		return errs, err
	case errors.As(err, &failed) && failed.valid(len(docs)):
		failed.zero(out)
		return append(errs, failed...), nil
	}
	// Slow path: one document at a time, so only the bad ones fail.
	ones := make([]Output, len(docs))
	bad := make([]bool, len(docs))
	for i := range docs {
		if err := safeProcess(wl, docs[i:i+1], &ones[i]); err != nil {
			bad[i] = true
			errs = append(errs, DocError{Doc: uint32(i), Msg: err.Error()})
		}
	}
	out.Reset()
	for i := range ones { // widths come from any document that succeeded
		if !bad[i] {
			out.Dim, out.Stride = ones[i].Dim, ones[i].Stride
			break
		}
	}
	ends := slices.ContainsFunc(ones, func(o Output) bool { return len(o.Ends) > 0 })
	for i := range ones {
		appendDoc(out, &ones[i], uint32(i), bad[i], ends)
		out.Hop += ones[i].Hop
	}
	return errs, nil
}

func safeProcess(wl Workload, docs []string, out *Output) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("workload %s panicked: %v", wl.Name(), p)
		}
	}()
	return wl.Process(docs, out)
}

// appendDoc appends a one-document output to out as document doc, or a zero
// row (no bytes, with ends) when the document failed, so rows stay aligned
// with documents. ends says the batch's bytes are in the Ends shape.
func appendDoc(out, one *Output, doc uint32, failed, ends bool) {
	switch {
	case failed:
		out.Vecs = append(out.Vecs, make([]float32, out.Dim)...)
		out.Data = append(out.Data, make([]byte, out.Stride)...)
	case ends:
		out.Data = append(out.Data, one.Doc(0)...)
	default:
		out.Data = append(out.Data, one.Data...)
	}
	if ends {
		out.Ends = append(out.Ends, uint32(len(out.Data)))
	}
	if failed {
		return
	}
	out.Vecs = append(out.Vecs, one.Vecs...)
	for _, s := range one.Spans {
		s.Doc = doc
		out.Spans = append(out.Spans, s)
	}
}

// DefaultCacheBytes is the memory a Cache keeps by default: one infer
// model at the largest dim (32 MiB) with room, or a dozen at the default
// dim (4.7 MiB each).
const DefaultCacheBytes = 64 << 20

// cacheEntries bounds the workloads a Cache keeps whatever their size, so
// hostile params cannot grow it one small workload at a time.
const cacheEntries = 64

// Sizer is implemented by workloads that hold memory of their own (infer's
// weights), so a Cache can bound what it keeps. A workload without it
// counts as nothing but an entry.
type Sizer interface {
	// MemoryBytes is the memory the workload holds while it is kept.
	MemoryBytes() int64
}

// Cache caches built workloads by name and params, since building one
// (infer's weights, spin's calibration) costs more than a batch. It is an
// LRU (hashicorp/golang-lru's simplelru) bounded in entries and in the
// bytes its workloads hold (Sizer): a new model seed per job replaces the
// least recently used model instead of adding 32 MiB to the worker. The
// zero value is ready to use; it is safe for concurrent use.
type Cache struct {
	mu        sync.Mutex
	lru       *simplelru.LRU[workloadKey, Workload]
	bytes     int64   // MemoryBytes of the workloads kept
	closeErrs []error // from closing evicted workloads, for Close
}

// evicted forgets wl's bytes and closes it when it holds resources
// (io.Closer: an exec workload's child process). Called with mu held.
func (c *Cache) evicted(_ workloadKey, wl Workload) {
	c.bytes -= memoryBytes(wl)
	if cl, ok := wl.(io.Closer); ok {
		if err := cl.Close(); err != nil {
			c.closeErrs = append(c.closeErrs, err)
		}
	}
}

type workloadKey struct {
	name string
	p    Params
}

// Get is GetWithin with DefaultCacheBytes.
func (c *Cache) Get(name string, p Params) (Workload, error) {
	return c.GetWithin(name, p, 0)
}

// GetWithin returns the workload for name and p, building it on first
// use, and keeps at most maxBytes of workloads (0 = DefaultCacheBytes),
// evicting the least recently used. A workload larger than maxBytes is
// returned without being kept: it is built again on every call.
func (c *Cache) GetWithin(name string, p Params, maxBytes int64) (Workload, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultCacheBytes
	}
	k := workloadKey{name, p}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lru == nil {
		c.lru, _ = simplelru.NewLRU(cacheEntries, c.evicted)
	}
	if wl, ok := c.lru.Get(k); ok {
		c.shrink(maxBytes)
		return wl, nil
	}
	wl, err := New(name, p)
	if err != nil {
		return nil, err
	}
	size := memoryBytes(wl)
	if size > maxBytes {
		c.shrink(0)
		return wl, nil
	}
	c.shrink(maxBytes - size)
	c.lru.Add(k, wl)
	c.bytes += size
	return wl, nil
}

// shrink evicts the least recently used workloads until at most maxBytes
// are kept. Called with mu held.
func (c *Cache) shrink(maxBytes int64) {
	for c.bytes > maxBytes && c.lru.Len() > 0 {
		c.lru.RemoveOldest()
	}
}

// Len is the number of workloads kept.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lru == nil {
		return 0
	}
	return c.lru.Len()
}

func memoryBytes(wl Workload) int64 {
	if s, ok := wl.(Sizer); ok {
		return s.MemoryBytes()
	}
	return 0
}

// ResultSizer is implemented by workloads that can tell, before
// computing, an upper bound of the output (Output.Bytes) Process appends
// for docs, so a worker refuses a batch whose result it could not hold or
// send before it allocates any of it. It must be cheap: a pass over the
// document lengths at most.
type ResultSizer interface {
	ResultBytes(docs []string) int64
}

// ResultBytes is wl's bound on the output bytes of docs, and false when wl
// cannot tell (a workload of one's own without ResultSizer).
func ResultBytes(wl Workload, docs []string) (int64, bool) {
	if s, ok := wl.(ResultSizer); ok {
		return s.ResultBytes(docs), true
	}
	return 0, false
}
