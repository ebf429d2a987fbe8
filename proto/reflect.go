package proto

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// reflectCodec is msgpack's default reflection path on the struct tags: every
// float32 is its own msgpack value. It is kept so users can see its cost
// against packed (about 20x slower on embedding results). Its decoder first
// walks the message with Check, because the library's own allocation limit
// is not applied in v5.4.1.
type reflectCodec struct{ lim Limits }

func (reflectCodec) Name() string { return CodecMsgpack }

func (reflectCodec) AppendBatch(dst []byte, b *Batch) ([]byte, error) {
	p, err := msgpack.Marshal(b)
	if err != nil {
		return dst, fmt.Errorf("encode batch %d: %w", b.ID, err)
	}
	return append(dst, p...), nil
}

func (c reflectCodec) DecodeBatch(src []byte, b *Batch) error {
	if err := Check(src, c.lim.MaxDepth); err != nil {
		return fmt.Errorf("decode batch: %w", err)
	}
	*b = Batch{}
	if err := msgpack.Unmarshal(src, b); err != nil {
		return fmt.Errorf("decode batch: %w: %v", ErrMalformed, err)
	}
	return checkBatch(b, c.lim)
}

func (reflectCodec) AppendResult(dst []byte, r *Result) ([]byte, error) {
	p, err := msgpack.Marshal(r)
	if err != nil {
		return dst, fmt.Errorf("encode result %d: %w", r.BatchID, err)
	}
	return append(dst, p...), nil
}

func (c reflectCodec) DecodeResult(src []byte, r *Result) error {
	if err := Check(src, c.lim.MaxDepth); err != nil {
		return fmt.Errorf("decode result: %w", err)
	}
	*r = Result{}
	if err := msgpack.Unmarshal(src, r); err != nil {
		return fmt.Errorf("decode result: %w: %v", ErrMalformed, err)
	}
	return checkResult(r)
}
