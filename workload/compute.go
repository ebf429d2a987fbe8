package workload

import (
	"errors"
	"fmt"
	"slices"
	"sync"
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

// Cache caches built workloads by name and params, since building one
// (infer's weights, spin's calibration) costs more than a batch.
type Cache struct {
	mu sync.Mutex
	m  map[workloadKey]Workload
}

type workloadKey struct {
	name string
	p    Params
}

// Get returns the workload for name and p, building it on first use.
func (c *Cache) Get(name string, p Params) (Workload, error) {
	k := workloadKey{name, p}
	c.mu.Lock()
	defer c.mu.Unlock()
	if wl, ok := c.m[k]; ok {
		return wl, nil
	}
	wl, err := New(name, p)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[workloadKey]Workload{}
	}
	if len(c.m) > 64 { // hostile params must not grow the cache without bound
		_ = c.closeAll()
	}
	c.m[k] = wl
	return wl, nil
}
