package proto

import (
	"encoding/binary"
	"fmt"

	"github.com/ferrylab/ferry/workload"
)

// appendArgs writes a batch's workload arguments: the map as it is, or an
// empty map.
func appendArgs(dst []byte, a workload.Args) []byte {
	if a == "" {
		return append(dst, 0x80)
	}
	return append(dst, a...)
}

// decodeArgs reads the last field of a batch's params: a map (kept as its
// bytes; workload.New checks its keys and values), nil, or the empty
// string that earlier coordinators sent there (panic_on, a test hook
// that has left the wire).
func decodeArgs(r *reader, a *workload.Args) error {
	start := r.off
	if err := r.skip(2); err != nil { // a map of scalars
		return fmt.Errorf("args: %w", err)
	}
	raw := r.b[start:r.off]
	switch {
	case len(raw) > workload.MaxArgsBytes:
		return fmt.Errorf("args: %d bytes over the limit of %d: %w", len(raw), workload.MaxArgsBytes, ErrLimit)
	case raw[0] == 0xc0, raw[0] == 0xa0, raw[0] == 0x80:
		*a = ""
	case raw[0]&0xf0 == 0x80, raw[0] == 0xde, raw[0] == 0xdf:
		if string(*a) != string(raw) { // a reused Batch keeps its args: no allocation
			*a = workload.Args(raw)
		}
	default:
		return fmt.Errorf("args: want a map, got 0x%02x: %w", raw[0], ErrMalformed)
	}
	return nil
}

// appendEnds writes a result's per-document byte ends as one bin of
// little-endian uint32, or nothing when there are none (the field is
// optional, so results without it keep their earlier 8-field form).
func appendEnds(dst []byte, ends []uint32) []byte {
	if len(ends) == 0 {
		return dst
	}
	dst = appendBinHeader(dst, 4*len(ends))
	for _, e := range ends {
		dst = binary.LittleEndian.AppendUint32(dst, e)
	}
	return dst
}

func decodeEnds(r *reader, dst []uint32) ([]uint32, error) {
	b, err := r.strBytes("ends", 0)
	if err != nil {
		return dst, err
	}
	if len(b)%4 != 0 {
		return dst, fmt.Errorf("ends: %d bytes is not whole uint32s: %w", len(b), ErrMalformed)
	}
	dst = grow(dst, len(b)/4)
	for i := range dst {
		dst[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return dst, nil
}

// checkEnds verifies a result's per-document ends: with no stride, never
// decreasing, the last one where the data ends.
func checkEnds(r *Result) error {
	o := &r.Out
	if len(o.Ends) == 0 {
		return nil
	}
	if o.Stride != 0 {
		return fmt.Errorf("result %d: both stride and ends: %w", r.BatchID, ErrMalformed)
	}
	prev := uint32(0)
	for i, e := range o.Ends {
		if e < prev {
			return fmt.Errorf("result %d: end %d of document %d is before %d: %w", r.BatchID, e, i, prev, ErrMalformed)
		}
		prev = e
	}
	if int(prev) != len(o.Data) {
		return fmt.Errorf("result %d: ends stop at %d, data has %d bytes: %w", r.BatchID, prev, len(o.Data), ErrMalformed)
	}
	return nil
}
