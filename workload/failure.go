package workload

import (
	"errors"
	"fmt"
)

// ErrBatchFailed marks an error of Process that is not its documents'
// fault: the batch could not be computed where it was sent (an exec child
// crashed, hung or broke the protocol). ComputeBatch hands it to its
// caller, so a worker answers with an error and the coordinator retries
// the batch and, if it keeps failing, bisects it, as for a worker that
// died; Compute fails every document with it.
var ErrBatchFailed = errors.New("workload: batch failed")

// DocErrors is an error of Process that fails some documents of a batch
// and not the others: Process has written a row for every document (any
// bytes for the failed ones; their vectors and fixed-size bytes are then
// zeroed), and these documents are reported as failed. A workload returns
// it instead of panicking for documents it can name.
type DocErrors []DocError

func (e DocErrors) Error() string {
	if len(e) == 0 {
		return "no documents failed"
	}
	return fmt.Sprintf("%d documents failed, first %d: %s", len(e), e[0].Doc, e[0].Msg)
}

// valid reports whether every document of e is one of n.
func (e DocErrors) valid(n int) bool {
	for _, d := range e {
		if int(d.Doc) >= n {
			return false
		}
	}
	return len(e) > 0
}

// zero clears the vector rows and fixed-size bytes of e's documents in o,
// so failed rows are zero whatever Process left there.
func (e DocErrors) zero(o *Output) {
	for _, d := range e {
		i := int(d.Doc)
		if o.Dim > 0 && (i+1)*o.Dim <= len(o.Vecs) {
			clear(o.Vecs[i*o.Dim : (i+1)*o.Dim])
		}
		if o.Stride > 0 && (i+1)*o.Stride <= len(o.Data) {
			clear(o.Data[i*o.Stride : (i+1)*o.Stride])
		}
	}
}

// Close closes every cached workload that holds resources (io.Closer: an
// exec workload's child process) and empties c. The cache's owner calls it
// when it stops computing.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lru != nil {
		c.lru.Purge() // evicted closes each
	}
	err := errors.Join(c.closeErrs...)
	c.closeErrs = nil
	return err
}
