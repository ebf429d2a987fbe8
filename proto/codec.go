package proto

import "fmt"

// Codec turns Batches and Results into msgpack bytes and back. Both of
// ferry's codecs write valid msgpack and decode to identical values; they
// differ only in speed.
//
// Decode methods treat src as hostile (see Limits) and may alias it: decoded
// document texts point into src, so src must stay unchanged while the Batch
// is in use. Implementations are safe for concurrent use.
type Codec interface {
	Name() string
	AppendBatch(dst []byte, b *Batch) ([]byte, error)
	DecodeBatch(src []byte, b *Batch) error
	AppendResult(dst []byte, r *Result) ([]byte, error)
	DecodeResult(src []byte, r *Result) error
}

// Codec names accepted by NewCodec.
const (
	CodecPacked  = "packed"
	CodecMsgpack = "msgpack"
)

// CodecNames lists the codecs, default first.
func CodecNames() []string { return []string{CodecPacked, CodecMsgpack} }

// NewCodec returns the named codec enforcing lim.
func NewCodec(name string, lim Limits) (Codec, error) {
	lim = lim.WithDefaults()
	switch name {
	case CodecPacked, "":
		return packed{lim: lim}, nil
	case CodecMsgpack:
		return reflectCodec{lim: lim}, nil
	}
	return nil, fmt.Errorf("proto: unknown codec %q (known: %v)", name, CodecNames())
}

// checkBatch applies the semantic limits every codec shares.
func checkBatch(b *Batch, lim Limits) error {
	if len(b.Docs) > lim.MaxDocs {
		return fmt.Errorf("batch %d: %d documents over the limit of %d: %w", b.ID, len(b.Docs), lim.MaxDocs, ErrLimit)
	}
	for i, d := range b.Docs {
		if len(d) > lim.MaxDocBytes {
			return fmt.Errorf("batch %d: document %d has %d bytes, over the limit of %d: %w", b.ID, b.First+int64(i), len(d), lim.MaxDocBytes, ErrLimit)
		}
	}
	if b.First < 0 {
		return fmt.Errorf("batch %d: negative first index %d: %w", b.ID, b.First, ErrMalformed)
	}
	return nil
}

// checkResult verifies a Result's columns are consistent with each other.
func checkResult(r *Result) error {
	if r.Out.Dim < 0 || r.Out.Stride < 0 {
		return fmt.Errorf("result %d: negative dim or stride: %w", r.BatchID, ErrMalformed)
	}
	if r.Out.Dim > 0 && len(r.Out.Vecs)%r.Out.Dim != 0 {
		return fmt.Errorf("result %d: %d floats is not a multiple of dim %d: %w", r.BatchID, len(r.Out.Vecs), r.Out.Dim, ErrMalformed)
	}
	if r.Out.Stride > 0 && len(r.Out.Data)%r.Out.Stride != 0 {
		return fmt.Errorf("result %d: %d data bytes is not a multiple of stride %d: %w", r.BatchID, len(r.Out.Data), r.Out.Stride, ErrMalformed)
	}
	return checkEnds(r)
}

// grow returns s resized to n, reusing its capacity. Callers overwrite all n
// elements, so a new slice need not copy the old one: make allocates once,
// where slices.Grow allocates twice under -race.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
