package worker

import (
	"fmt"
	"sync"

	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/workload"
)

// Compute runs wl over docs into res.Out, the same way in every execution
// mode. A panic is recovered: the batch is then run one document at a time
// so only the documents that panic fail; their rows are zero and they are
// listed in res.Errs. One bad document never fails a batch.
func Compute(wl workload.Workload, docs []string, res *proto.Result) {
	res.Out.Reset()
	res.Errs = res.Errs[:0]
	if err := safeProcess(wl, docs, &res.Out); err == nil {
		return
	}
	// Slow path: one document at a time, so only the bad ones fail.
	ones := make([]workload.Output, len(docs))
	failed := make([]bool, len(docs))
	for i := range docs {
		if err := safeProcess(wl, docs[i:i+1], &ones[i]); err != nil {
			failed[i] = true
			res.Errs = append(res.Errs, proto.DocError{Doc: uint32(i), Msg: err.Error()})
		}
	}
	res.Out.Reset()
	for i := range ones { // widths come from any document that succeeded
		if !failed[i] {
			res.Out.Dim, res.Out.Stride = ones[i].Dim, ones[i].Stride
			break
		}
	}
	for i := range ones {
		appendDoc(&res.Out, &ones[i], uint32(i), failed[i])
	}
}

func safeProcess(wl workload.Workload, docs []string, out *workload.Output) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("workload %s panicked: %v", wl.Name(), p)
		}
	}()
	return wl.Process(docs, out)
}

// appendDoc appends a one-document output to out as document doc, or a zero
// row when the document failed, so rows stay aligned with documents.
func appendDoc(out, one *workload.Output, doc uint32, failed bool) {
	if failed {
		out.Vecs = append(out.Vecs, make([]float32, out.Dim)...)
		out.Data = append(out.Data, make([]byte, out.Stride)...)
		return
	}
	out.Vecs = append(out.Vecs, one.Vecs...)
	out.Data = append(out.Data, one.Data...)
	for _, s := range one.Spans {
		s.Doc = doc
		out.Spans = append(out.Spans, s)
	}
}

// Workloads caches built workloads by name and params, since building one
// (infer's weights, spin's calibration) costs more than a batch.
type Workloads struct {
	mu sync.Mutex
	m  map[workloadKey]workload.Workload
}

type workloadKey struct {
	name string
	p    workload.Params
}

// Get returns the workload for name and p, building it on first use.
func (c *Workloads) Get(name string, p workload.Params) (workload.Workload, error) {
	k := workloadKey{name, p}
	c.mu.Lock()
	defer c.mu.Unlock()
	if wl, ok := c.m[k]; ok {
		return wl, nil
	}
	wl, err := workload.New(name, p)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[workloadKey]workload.Workload{}
	}
	if len(c.m) > 64 { // hostile params must not grow the cache without bound
		clear(c.m)
	}
	c.m[k] = wl
	return wl, nil
}
