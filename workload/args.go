package workload

import (
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
)

// Args are a workload's own parameters as they travel with each batch: a
// msgpack map from key to value (nil, bool, integer, float or string), in
// the canonical form MakeArgs writes (keys sorted, smallest encodings).
// Holding the encoded bytes keeps Params comparable, so a built workload is
// cached by them, and lets the wire and the exec pipe carry them as they
// are. The zero value is no arguments.
type Args string

// Bounds of Args: a hostile batch cannot make a worker decode more.
const (
	MaxArgs         = 32       // keys per Args
	MaxArgKeyBytes  = 32       // bytes per key
	MaxArgTextBytes = 4096     // bytes per string value
	MaxArgsBytes    = 64 << 10 // encoded bytes of one Args
)

// MakeArgs encodes m canonically. Values must be bool, a Go integer,
// float32/64 or string; keys 1 to MaxArgKeyBytes bytes of [a-z0-9_].
func MakeArgs(m map[string]any) (Args, error) {
	if len(m) > MaxArgs {
		return "", fmt.Errorf("%w: %d params, at most %d", ErrInvalidParams, len(m), MaxArgs)
	}
	if len(m) == 0 {
		return "", nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if err := checkKey(k); err != nil {
			return "", err
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b := appendMapLen(nil, len(keys))
	for _, k := range keys {
		b = appendText(b, k)
		var err error
		if b, err = appendValue(b, k, m[k]); err != nil {
			return "", err
		}
	}
	return Args(b), nil
}

// Map decodes a into its keys and values: int64, float64, string, bool or
// nil. It reads a as hostile, within the bounds above.
func (a Args) Map() (map[string]any, error) {
	if a == "" {
		return nil, nil
	}
	if len(a) > MaxArgsBytes {
		return nil, fmt.Errorf("%w: args of %d bytes, at most %d", ErrInvalidParams, len(a), MaxArgsBytes)
	}
	r := argReader{s: string(a)}
	n, err := r.mapLen()
	if err != nil {
		return nil, err
	}
	m := make(map[string]any, n)
	for range n {
		k, err := r.value()
		if err != nil {
			return nil, err
		}
		key, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("%w: args key %v is not a string", ErrInvalidParams, k)
		}
		if err := checkKey(key); err != nil {
			return nil, err
		}
		if m[key], err = r.value(); err != nil {
			return nil, fmt.Errorf("param %s: %w", key, err)
		}
	}
	if r.off != len(r.s) {
		return nil, fmt.Errorf("%w: %d trailing bytes after args", ErrInvalidParams, len(r.s)-r.off)
	}
	return m, nil
}

// EncodeMsgpack writes a as the map it is, so msgpack's reflection codec
// puts the same map on the wire as the packed codec.
func (a Args) EncodeMsgpack(enc *msgpack.Encoder) error {
	if a == "" {
		return enc.EncodeMapLen(0)
	}
	return msgpack.RawMessage(a).EncodeMsgpack(enc)
}

// DecodeMsgpack reads a map (or nil) as Args; New checks what it holds.
func (a *Args) DecodeMsgpack(dec *msgpack.Decoder) error {
	raw, err := dec.DecodeRaw()
	if err != nil {
		return err
	}
	switch c := raw[0]; {
	case len(raw) > MaxArgsBytes:
		return fmt.Errorf("%w: args of %d bytes, at most %d", ErrInvalidParams, len(raw), MaxArgsBytes)
	case c == 0xc0 || c == 0x80:
		*a = ""
	case c&0xf0 == 0x80 || c == 0xde || c == 0xdf:
		*a = Args(raw)
	default:
		return fmt.Errorf("%w: args are not a map (0x%02x)", ErrInvalidParams, c)
	}
	return nil
}

// String is a as key=value pairs in key order, for logs and reports; an
// undecodable a prints as its error.
func (a Args) String() string {
	m, err := a.Map()
	if err != nil {
		return err.Error()
	}
	pairs := make([]string, 0, len(m))
	for k, v := range m {
		pairs = append(pairs, fmt.Sprintf("%s=%v", k, v))
	}
	slices.Sort(pairs)
	return strings.Join(pairs, " ")
}

func checkKey(k string) error {
	ok := k != "" && len(k) <= MaxArgKeyBytes
	for i := 0; ok && i < len(k); i++ {
		c := k[i]
		ok = c == '_' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
	}
	if !ok {
		return fmt.Errorf("%w: param key %q: want 1 to %d of a-z, 0-9, _", ErrInvalidParams, k, MaxArgKeyBytes)
	}
	return nil
}

// inferValue types a --param value of an undeclared parameter (exec
// workloads) by its text: an integer, a float, true or false, else a
// string; a value in double quotes is always a string, without them.
func inferValue(s string) any {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
		return f
	}
	if b, err := strconv.ParseBool(s); err == nil && (s == "true" || s == "false") {
		return b
	}
	return s
}

// The encoder writes only what Map reads back.

func appendMapLen(b []byte, n int) []byte {
	if n < 16 {
		return append(b, 0x80|byte(n))
	}
	return append(b, 0xde, byte(n>>8), byte(n))
}

func appendText(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	default:
		b = append(b, 0xda, byte(n>>8), byte(n))
	}
	return append(b, s...)
}

func appendValue(b []byte, key string, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, 0xc0), nil
	case bool:
		if x {
			return append(b, 0xc3), nil
		}
		return append(b, 0xc2), nil
	case string:
		if len(x) > MaxArgTextBytes {
			return nil, fmt.Errorf("%w: param %s: %d bytes, at most %d", ErrInvalidParams, key, len(x), MaxArgTextBytes)
		}
		return appendText(b, x), nil
	case float32:
		return appendValue(b, key, float64(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%w: param %s: %v is not a finite number", ErrInvalidParams, key, x)
		}
		return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(x)), nil
	}
	switch rv := reflect.ValueOf(v); {
	case rv.CanInt():
		return appendInt(b, rv.Int()), nil
	case rv.CanUint() && rv.Uint() <= math.MaxInt64:
		return appendInt(b, int64(rv.Uint())), nil
	}
	return nil, fmt.Errorf("%w: param %s: value %v of type %T: want bool, integer, float or string", ErrInvalidParams, key, v, v)
}

func appendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0 && v < 128, v < 0 && v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8 && v <= math.MaxInt8:
		return append(b, 0xd0, byte(v))
	case v >= math.MinInt16 && v <= math.MaxInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(v))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}

// argReader reads the flat map of an Args. Every length is checked against
// the bytes left before it is used.
type argReader struct {
	s   string
	off int
}

func (r *argReader) next(n int) (string, error) {
	if n < 0 || n > len(r.s)-r.off {
		return "", fmt.Errorf("%w: args truncated", ErrInvalidParams)
	}
	s := r.s[r.off : r.off+n]
	r.off += n
	return s, nil
}

func (r *argReader) be(n int) (uint64, error) {
	s, err := r.next(n)
	var v uint64
	for i := range len(s) {
		v = v<<8 | uint64(s[i])
	}
	return v, err
}

func (r *argReader) mapLen() (int, error) {
	c, err := r.be(1)
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&0xf0 == 0x80:
		n = c & 0x0f
	case c == 0xde:
		n, err = r.be(2)
	case c == 0xdf:
		n, err = r.be(4)
	case c == 0xc0: // nil: no args
		return 0, nil
	default:
		return 0, fmt.Errorf("%w: args are not a map (0x%02x)", ErrInvalidParams, c)
	}
	if err == nil && n > MaxArgs {
		err = fmt.Errorf("%w: %d params, at most %d", ErrInvalidParams, n, MaxArgs)
	}
	return int(n), err
}

func (r *argReader) value() (any, error) {
	c, err := r.be(1)
	if err != nil {
		return nil, err
	}
	text := func(n uint64, err error) (any, error) {
		if err != nil {
			return nil, err
		}
		if n > MaxArgTextBytes {
			return nil, fmt.Errorf("%w: string of %d bytes, at most %d", ErrInvalidParams, n, MaxArgTextBytes)
		}
		return r.next(int(n))
	}
	switch {
	case c < 0x80:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c&0xe0 == 0xa0:
		return text(c&0x1f, nil)
	}
	switch c {
	case 0xc0:
		return nil, nil
	case 0xc2, 0xc3:
		return c == 0xc3, nil
	case 0xd9:
		return text(r.be(1))
	case 0xda:
		return text(r.be(2))
	case 0xdb:
		return text(r.be(4))
	case 0xcc, 0xcd, 0xce:
		return uintValue(r.be(1 << (c - 0xcc)))
	case 0xcf:
		v, err := r.be(8)
		if err == nil && v > math.MaxInt64 {
			err = fmt.Errorf("%w: integer %d out of range", ErrInvalidParams, v)
		}
		return int64(v), err
	case 0xd0:
		v, err := r.be(1)
		return int64(int8(v)), err
	case 0xd1:
		v, err := r.be(2)
		return int64(int16(v)), err
	case 0xd2:
		v, err := r.be(4)
		return int64(int32(v)), err
	case 0xd3:
		v, err := r.be(8)
		return int64(v), err
	case 0xca:
		v, err := r.be(4)
		return finite(float64(math.Float32frombits(uint32(v))), err)
	case 0xcb:
		v, err := r.be(8)
		return finite(math.Float64frombits(v), err)
	}
	return nil, fmt.Errorf("%w: args value of msgpack type 0x%02x: want nil, bool, integer, float or string", ErrInvalidParams, c)
}

func uintValue(v uint64, err error) (any, error) { return int64(v), err }

func finite(f float64, err error) (any, error) {
	if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
		err = fmt.Errorf("%w: %v is not a finite number", ErrInvalidParams, f)
	}
	return f, err
}
