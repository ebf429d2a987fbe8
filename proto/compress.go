package proto

import (
	"encoding/binary"
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

// decompress checks the declared size against the bound and that the
// block really decodes to it (s2Len), then decodes into dst's capacity or a
// new slice of exactly that size. Nothing is allocated for a message that
// claims more than it holds.
func (c *Compressed) decompress(dst, src []byte) ([]byte, error) {
	n, err := s2Len(src, c.maxBytes)
	if err != nil {
		return nil, err
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

// s2Len walks an s2 block without writing it and returns its decoded
// length: the length its header declares, once it is at most maxBytes and
// the block's literals and copies produce exactly that many bytes, each
// copy reaching back only into bytes already produced. It follows
// s2.Decode's parser (decode_other.go) step for step, so it accepts exactly
// what Decode accepts (FuzzS2Len holds it to that). Walking costs about one
// read of the compressed bytes; trusting the header would let a few bytes
// claim, and be handed, maxBytes.
func s2Len(src []byte, maxBytes int) (int, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return 0, fmt.Errorf("s2: %v: %w", err, ErrMalformed)
	}
	if n > maxBytes {
		return 0, fmt.Errorf("s2: decompresses to %d bytes, over the limit of %d: %w", n, maxBytes, ErrLimit)
	}
	corrupt := func(what string, at int) error {
		return fmt.Errorf("s2: %s at byte %d of a block declaring %d bytes: %w", what, at, n, ErrMalformed)
	}
	_, s := binary.Uvarint(src)
	d, offset := 0, 0
	// load reads the k bytes at src[at:] as a little-endian number.
	load := func(at, k int) (int, bool) {
		if at+k > len(src) {
			return 0, false
		}
		v := 0
		for i := at + k - 1; i >= at; i-- {
			v = v<<8 | int(src[i])
		}
		return v, true
	}
	for s < len(src) {
		tag := src[s]
		var length int
		ok := true
		switch tag & 0x03 {
		case 0x00: // literal; lengths over 60 follow the tag in 1 to 4 bytes
			length = int(tag >> 2)
			k := max(length-59, 0)
			if k > 0 {
				length, ok = load(s+1, k)
			}
			s += 1 + k
			length++
			if !ok || length > n-d || length > len(src)-s {
				return 0, corrupt("literal past the end", s)
			}
			d += length
			s += length
			continue
		case 0x01: // copy with an 11-bit offset, or (offset 0) a repeat of the last one
			var lo int
			lo, ok = load(s+1, 1)
			length = int(tag>>2)&0x7 + 4
			toffset := int(tag&0xe0)<<3 | lo
			s += 2
			switch {
			case !ok:
			case toffset != 0:
				offset = toffset
			case length >= 9: // 1, 2 or 3 more length bytes
				k := length - 8
				length, ok = load(s, k)
				length += [...]int{4, 1 << 8, 1 << 16}[k-1] + 4
				s += k
			}
		case 0x02: // copy with a 16-bit offset
			offset, ok = load(s+1, 2)
			length = 1 + int(tag>>2)
			s += 3
		case 0x03: // copy with a 32-bit offset
			offset, ok = load(s+1, 4)
			length = 1 + int(tag>>2)
			s += 5
		}
		if !ok {
			return 0, corrupt("truncated copy", s)
		}
		if offset <= 0 || d < offset || length > n-d {
			return 0, corrupt("copy outside the output", s)
		}
		d += length
	}
	if d != n {
		return 0, corrupt(fmt.Sprintf("block ends after %d bytes", d), s)
	}
	return n, nil
}
