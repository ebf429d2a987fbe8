package proto

import (
	"fmt"
	"slices"
	"sync"

	"github.com/klauspost/compress/s2"
)

// Compression names, as the compress config key and HeaderCompress take them.
const (
	CompressNone = ""   // the default: messages go as encoded
	CompressS2   = "s2" // klauspost/compress s2 block format (Snappy's successor)
)

// HeaderCompress names the compression of a message's payload; a message
// without it is not compressed. A worker compresses its reply the way the
// batch was compressed, and each side decodes by the header it receives, so
// compressed and plain messages mix freely on one subject.
const HeaderCompress = "Ferry-Compress"

// CompressNames lists the compressions, the default ("" = none) first.
func CompressNames() []string { return []string{CompressNone, CompressS2} }

// Compressed is a Codec that compresses what another codec encodes. It is
// for text-heavy payloads crossing a real network: on loopback, or for
// embedding vectors (which barely compress), it costs more than it saves.
type Compressed struct {
	inner    Codec
	maxBytes int
	scratch  sync.Pool // *[]byte: the inner encoding before compression
}

// NewCompressed wraps c with the named compression. A message whose
// decompressed size would exceed maxBytes is rejected before anything is
// allocated, so a small hostile message cannot claim gigabytes; pass the
// broker's max_payload, the most an uncompressed message could carry.
// NewCompressed with CompressNone returns c itself.
func NewCompressed(c Codec, name string, maxBytes int) (Codec, error) {
	switch name {
	case CompressNone:
		return c, nil
	case CompressS2:
		if maxBytes <= 0 {
			return nil, fmt.Errorf("proto: compression needs a positive size bound, got %d", maxBytes)
		}
		return &Compressed{inner: c, maxBytes: maxBytes}, nil
	}
	return nil, fmt.Errorf("proto: unknown compression %q (known: none, %s)", name, CompressS2)
}

// Name is the wrapped codec's name: the compression travels in its own header.
func (c *Compressed) Name() string { return c.inner.Name() }

// Compression is the compression's name (CompressS2).
func (c *Compressed) Compression() string { return CompressS2 }

// Unwrap returns the codec underneath, for messages that arrive uncompressed.
func (c *Compressed) Unwrap() Codec { return c.inner }

// AppendBatch encodes b with the inner codec and appends it compressed.
func (c *Compressed) AppendBatch(dst []byte, b *Batch) ([]byte, error) {
	return c.compress(dst, func(buf []byte) ([]byte, error) { return c.inner.AppendBatch(buf, b) })
}

// AppendResult encodes r with the inner codec and appends it compressed.
func (c *Compressed) AppendResult(dst []byte, r *Result) ([]byte, error) {
	return c.compress(dst, func(buf []byte) ([]byte, error) { return c.inner.AppendResult(buf, r) })
}

func (c *Compressed) compress(dst []byte, encode func([]byte) ([]byte, error)) ([]byte, error) {
	bp, _ := c.scratch.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer c.scratch.Put(bp)
	raw, err := encode((*bp)[:0])
	*bp = raw
	if err != nil {
		return dst, err
	}
	if len(raw) > c.maxBytes { // the peer would refuse to decompress it
		return dst, fmt.Errorf("encoded message of %d bytes, over the limit of %d: %w", len(raw), c.maxBytes, ErrLimit)
	}
	n := s2.MaxEncodedLen(len(raw))
	if n < 0 {
		return dst, fmt.Errorf("compress %d bytes: too large: %w", len(raw), ErrLimit)
	}
	dst = slices.Grow(dst, n)
	enc := s2.Encode(dst[len(dst):len(dst)+n], raw)
	return dst[:len(dst)+len(enc)], nil
}

// DecodeBatch decompresses src into a new buffer (decoded documents alias
// it, so it cannot be reused) and decodes it with the inner codec.
func (c *Compressed) DecodeBatch(src []byte, b *Batch) error {
	raw, err := c.decompress(nil, src)
	if err != nil {
		return fmt.Errorf("decode batch: %w", err)
	}
	return c.inner.DecodeBatch(raw, b)
}

// DecodeResult decompresses src into a pooled buffer and decodes it with
// the inner codec, whose results never alias their input.
func (c *Compressed) DecodeResult(src []byte, r *Result) error {
	bp, _ := c.scratch.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer c.scratch.Put(bp)
	raw, err := c.decompress(*bp, src)
	if err != nil {
		return fmt.Errorf("decode result: %w", err)
	}
	*bp = raw
	return c.inner.DecodeResult(raw, r)
}

// decompress checks the declared size against the bound, then decodes into
// dst's capacity or a new slice of exactly that size.
func (c *Compressed) decompress(dst, src []byte) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return nil, fmt.Errorf("s2: %v: %w", err, ErrMalformed)
	}
	if n > c.maxBytes {
		return nil, fmt.Errorf("s2: decompresses to %d bytes, over the limit of %d: %w", n, c.maxBytes, ErrLimit)
	}
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	out, err := s2.Decode(dst[:n], src)
	if err != nil {
		return nil, fmt.Errorf("s2: %v: %w", err, ErrMalformed)
	}
	return out, nil
}
