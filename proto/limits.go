package proto

import (
	"fmt"

	"github.com/ferrylab/ferry/workload"
)

// Workload returns the workload of b, from c (which keeps at most
// l.CacheBytes), once it is sure the result fits: the workload's bound on
// its output (workload.ResultBytes) must be at most l.MaxResultBytes and
// maxPayload (the broker's max_payload; 0 = no such bound), since a result
// over max_payload could never be sent. This is checked before anything is
// computed, so a small batch of 100,000 documents asking for 1 MiB each is
// refused without allocating any of it. The error wraps ErrLimit: a worker
// answers it with 413, and the coordinator halves the batch until results
// fit; a single document whose result does not fit fails, naming the limit.
// A workload that cannot tell its result size (no workload.ResultSizer) is
// checked only after computing, against max_payload.
func (l Limits) Workload(c *workload.Cache, b *Batch, maxPayload int64) (workload.Workload, error) {
	wl, err := c.GetWithin(b.Workload, b.Params, l.CacheBytes)
	if err != nil {
		return nil, err
	}
	size, ok := workload.ResultBytes(wl, b.Docs)
	if !ok {
		return wl, nil
	}
	if l.MaxResultBytes > 0 && size > l.MaxResultBytes {
		return nil, fmt.Errorf("%w: the result of %d documents would be %d bytes, over the worker's max_result_bytes of %d; use smaller batches",
			ErrLimit, len(b.Docs), size, l.MaxResultBytes)
	}
	if maxPayload > 0 && size > maxPayload {
		return nil, fmt.Errorf("%w: the result of %d documents would be %d bytes, over the broker's max_payload of %d; use smaller batches",
			ErrLimit, len(b.Docs), size, maxPayload)
	}
	return wl, nil
}
