package proto

import (
	"encoding/binary"
	"fmt"
	"math"
)

// This file is a minimal msgpack reader and writer: just the types ferry's
// packed codec emits. Writing by hand lets numeric vectors go out as one bin
// value and come back with one copy, with no reflection and no allocation
// beyond the destination slices.

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xdc, byte(n>>8), byte(n))
	default:
		return append(b, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v < 128:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return append(b, 0xcd, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return append(b, 0xce, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
	}
}

func appendInt(b []byte, v int64) []byte {
	if v >= 0 {
		return appendUint(b, uint64(v))
	}
	if v >= -32 {
		return append(b, byte(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}

func appendStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xda, byte(n>>8), byte(n))
	default:
		b = append(b, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, s...)
}

// appendBinHeader writes a bin header for n bytes; the caller appends them.
func appendBinHeader(b []byte, n int) []byte {
	switch {
	case n <= math.MaxUint8:
		return append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xc5, byte(n>>8), byte(n))
	default:
		return append(b, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// appendToken writes t as a bin of its 16 bytes.
func appendToken(b []byte, t *Token) []byte {
	return append(append(b, 0xc4, byte(len(t))), t[:]...)
}

// reader walks a msgpack message. Every length it returns has been checked
// against the bytes that remain, so callers may allocate from it safely.
type reader struct {
	b     []byte
	off   int
	elems uint64 // array and map elements seen by skip
}

func (r *reader) remaining() int { return len(r.b) - r.off }

func (r *reader) byte1(what string) (byte, error) {
	if r.off >= len(r.b) {
		return 0, fmt.Errorf("%s: %w", what, ErrTruncated)
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *reader) take(n int, what string) ([]byte, error) {
	if n < 0 || n > r.remaining() {
		return nil, fmt.Errorf("%s: length %d exceeds the %d bytes left: %w", what, n, r.remaining(), ErrTruncated)
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s, nil
}

func (r *reader) be(n int, what string) (uint64, error) {
	s, err := r.take(n, what)
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range s {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// arrayLen reads an array header. minElem is the fewest bytes one element
// can take, so a declared count the message cannot hold is rejected here.
func (r *reader) arrayLen(what string, minElem int) (int, error) {
	c, err := r.byte1(what)
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&0xf0 == 0x90:
		n = uint64(c & 0x0f)
	case c == 0xdc:
		n, err = r.be(2, what)
	case c == 0xdd:
		n, err = r.be(4, what)
	case c == 0xc0: // nil: an empty array
		return 0, nil
	default:
		return 0, fmt.Errorf("%s: want array, got 0x%02x: %w", what, c, ErrMalformed)
	}
	if err != nil {
		return 0, err
	}
	if minElem < 1 {
		minElem = 1
	}
	if n > uint64(r.remaining()/minElem) {
		return 0, fmt.Errorf("%s: array of %d exceeds the %d bytes left: %w", what, n, r.remaining(), ErrTruncated)
	}
	return int(n), nil
}

func (r *reader) uint(what string) (uint64, error) {
	c, err := r.byte1(what)
	if err != nil {
		return 0, err
	}
	switch {
	case c < 0x80:
		return uint64(c), nil
	case c == 0xcc:
		return r.be(1, what)
	case c == 0xcd:
		return r.be(2, what)
	case c == 0xce:
		return r.be(4, what)
	case c == 0xcf:
		return r.be(8, what)
	case c == 0xd0, c == 0xd1, c == 0xd2, c == 0xd3:
		r.off--
		v, err := r.int(what)
		if err != nil {
			return 0, err
		}
		if v < 0 {
			return 0, fmt.Errorf("%s: negative value %d: %w", what, v, ErrMalformed)
		}
		return uint64(v), nil
	}
	return 0, fmt.Errorf("%s: want unsigned integer, got 0x%02x: %w", what, c, ErrMalformed)
}

func (r *reader) int(what string) (int64, error) {
	c, err := r.byte1(what)
	if err != nil {
		return 0, err
	}
	switch {
	case c < 0x80:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c == 0xd0:
		v, err := r.be(1, what)
		return int64(int8(v)), err
	case c == 0xd1:
		v, err := r.be(2, what)
		return int64(int16(v)), err
	case c == 0xd2:
		v, err := r.be(4, what)
		return int64(int32(v)), err
	case c == 0xd3:
		v, err := r.be(8, what)
		return int64(v), err
	case c == 0xcc, c == 0xcd, c == 0xce, c == 0xcf:
		r.off--
		v, err := r.uint(what)
		if err != nil {
			return 0, err
		}
		if v > math.MaxInt64 {
			return 0, fmt.Errorf("%s: value %d overflows int64: %w", what, v, ErrMalformed)
		}
		return int64(v), nil
	}
	return 0, fmt.Errorf("%s: want integer, got 0x%02x: %w", what, c, ErrMalformed)
}

// strBytes reads a str (or bin) value and returns its bytes without copying.
func (r *reader) strBytes(what string, max int) ([]byte, error) {
	c, err := r.byte1(what)
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c == 0xd9, c == 0xc4:
		n, err = r.be(1, what)
	case c == 0xda, c == 0xc5:
		n, err = r.be(2, what)
	case c == 0xdb, c == 0xc6:
		n, err = r.be(4, what)
	case c == 0xc0:
		return nil, nil
	default:
		return nil, fmt.Errorf("%s: want str or bin, got 0x%02x: %w", what, c, ErrMalformed)
	}
	if err != nil {
		return nil, err
	}
	if max > 0 && n > uint64(max) {
		return nil, fmt.Errorf("%s: %d bytes over the limit of %d: %w", what, n, max, ErrLimit)
	}
	if n > uint64(r.remaining()) {
		return nil, fmt.Errorf("%s: length %d exceeds the %d bytes left: %w", what, n, r.remaining(), ErrTruncated)
	}
	return r.take(int(n), what)
}

// token reads a Token: a bin or str of exactly its 16 bytes.
func (r *reader) token(t *Token) error {
	b, err := r.strBytes("token", len(t))
	if err != nil {
		return err
	}
	if len(b) != len(t) {
		return fmt.Errorf("token of %d bytes, want %d: %w", len(b), len(t), ErrMalformed)
	}
	copy(t[:], b)
	return nil
}

// skip steps over one value of any type, at most depth levels deep.
func (r *reader) skip(depth int) error {
	if depth <= 0 {
		return fmt.Errorf("nesting deeper than the limit: %w", ErrLimit)
	}
	c, err := r.byte1("value")
	if err != nil {
		return err
	}
	var n uint64
	var elems uint64 // child values to skip (arrays count 1 each, maps 2)
	switch {
	case c < 0x80 || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		return nil
	case c&0xf0 == 0x90:
		elems = uint64(c & 0x0f)
	case c&0xf0 == 0x80:
		elems = 2 * uint64(c&0x0f)
	case c&0xe0 == 0xa0:
		_, err = r.take(int(c&0x1f), "str")
		return err
	case c == 0xcc || c == 0xd0:
		_, err = r.take(1, "int")
		return err
	case c == 0xcd || c == 0xd1:
		_, err = r.take(2, "int")
		return err
	case c == 0xce || c == 0xd2 || c == 0xca:
		_, err = r.take(4, "number")
		return err
	case c == 0xcf || c == 0xd3 || c == 0xcb:
		_, err = r.take(8, "number")
		return err
	case c == 0xc4 || c == 0xd9:
		n, err = r.be(1, "str")
	case c == 0xc5 || c == 0xda:
		n, err = r.be(2, "str")
	case c == 0xc6 || c == 0xdb:
		n, err = r.be(4, "str")
	case c == 0xd4:
		_, err = r.take(2, "ext")
		return err
	case c == 0xd5:
		_, err = r.take(3, "ext")
		return err
	case c == 0xd6:
		_, err = r.take(5, "ext")
		return err
	case c == 0xd7:
		_, err = r.take(9, "ext")
		return err
	case c == 0xd8:
		_, err = r.take(17, "ext")
		return err
	case c == 0xc7:
		n, err = r.be(1, "ext")
		n++
	case c == 0xc8:
		n, err = r.be(2, "ext")
		n++
	case c == 0xc9:
		n, err = r.be(4, "ext")
		n++
	case c == 0xdc:
		elems, err = r.be(2, "array")
	case c == 0xdd:
		elems, err = r.be(4, "array")
	case c == 0xde:
		elems, err = r.be(2, "map")
		elems *= 2
	case c == 0xdf:
		elems, err = r.be(4, "map")
		elems *= 2
	default:
		return fmt.Errorf("unknown type byte 0x%02x: %w", c, ErrMalformed)
	}
	if err != nil {
		return err
	}
	if n > 0 {
		if n > uint64(r.remaining()) {
			return fmt.Errorf("length %d exceeds the %d bytes left: %w", n, r.remaining(), ErrTruncated)
		}
		r.off += int(n)
		return nil
	}
	if elems > uint64(r.remaining()) {
		return fmt.Errorf("%d elements exceed the %d bytes left: %w", elems, r.remaining(), ErrTruncated)
	}
	r.elems += elems
	for i := uint64(0); i < elems; i++ {
		if err := r.skip(depth - 1); err != nil {
			return err
		}
	}
	return nil
}

// elemCost is the most memory a reflection decoder spends on one array
// element of ferry's wire types: a DocError (string header plus uint32, 24
// bytes) twice over, because msgpack v5.4.1 sizes a slice with
// reflect.AppendSlice(v, reflect.MakeSlice(n)) and so allocates it twice
// (growSliceValue in decode_slice.go).
const elemCost = 2 * 24

// Check walks one msgpack value in b without allocating and reports whether
// every declared length fits in the bytes that remain, nesting stays within
// maxDepth, and decoding it into ferry's wire types can allocate at most
// 8 x len(b) + 1 MiB. Run it before handing untrusted bytes to a reflection
// decoder, whose own allocation limit cannot be relied on (msgpack v5.4.1
// never applies it: see decode_slice.go).
func Check(b []byte, maxDepth int) error {
	r := reader{b: b}
	if err := r.skip(maxDepth); err != nil {
		return err
	}
	if r.remaining() != 0 {
		return fmt.Errorf("%d trailing bytes: %w", r.remaining(), ErrMalformed)
	}
	if budget := uint64(8*len(b) + 1<<20); r.elems*elemCost > budget {
		return fmt.Errorf("%d elements in %d bytes could allocate over %d bytes: %w", r.elems, len(b), budget, ErrLimit)
	}
	return nil
}
