package coordinator

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/ferrylab/ferry/workload"
)

// Digest hashes a job's outputs document by document, in input order, in
// a form that does not depend on how documents were grouped into batches
// (or over how many coordinators the job was sharded): equal digests mean
// bit-identical results. Digests are compared within one machine, so
// vectors are hashed in native byte order. 64-bit xxHash: about ten times
// SHA-256's speed on the flush path.
type Digest struct {
	h *xxhash.Digest
}

// NewDigest returns an empty digest.
func NewDigest() *Digest { return &Digest{h: xxhash.New()} }

// Add hashes the outputs of the documents of one batch, in order; failed
// marks the documents that failed (their rows are zero and hash as such).
func (d *Digest) Add(o *workload.Output, failed []bool) {
	var buf [16]byte
	si := 0
	for i, f := range failed {
		if f {
			d.h.Write([]byte{0xff})
			continue
		}
		if o.Dim > 0 {
			row := o.Vecs[i*o.Dim : (i+1)*o.Dim]
			d.h.Write(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(row))), 4*len(row)))
		}
		for ; si < len(o.Spans) && int(o.Spans[si].Doc) <= i; si++ {
			s := o.Spans[si]
			if int(s.Doc) < i {
				continue
			}
			binary.LittleEndian.PutUint32(buf[0:], s.Start)
			binary.LittleEndian.PutUint32(buf[4:], s.End)
			binary.LittleEndian.PutUint32(buf[8:], s.Tokens)
			d.h.Write(buf[:12])
		}
		if o.Stride > 0 {
			d.h.Write(o.Data[i*o.Stride : (i+1)*o.Stride])
		} else if len(o.Ends) > 0 { // bytes of any length: prefixed, so they cannot run together
			doc := o.Doc(i)
			binary.LittleEndian.PutUint32(buf[:4], uint32(len(doc)))
			d.h.Write(buf[:4])
			d.h.Write(doc)
		}
		d.h.Write([]byte{0})
	}
}

// Sum is the digest as 16 hex digits (Stats.Digest).
func (d *Digest) Sum() string { return fmt.Sprintf("%016x", d.h.Sum64()) }
