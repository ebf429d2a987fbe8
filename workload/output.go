package workload

import (
	"bytes"
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5"
)

// AppendDoc appends b as the next document's bytes, of any length (the
// Ends shape of Output). A workload uses either it or Stride, not both.
func (o *Output) AppendDoc(b []byte) error {
	if len(o.Data)+len(b) > math.MaxUint32 {
		return fmt.Errorf("workload: output over 4 GiB")
	}
	o.Data = append(o.Data, b...)
	o.Ends = append(o.Ends, uint32(len(o.Data)))
	return nil
}

// Doc is document i's bytes, in either shape; nil when o holds none.
func (o *Output) Doc(i int) []byte {
	switch {
	case o.Stride > 0:
		return o.Data[i*o.Stride : (i+1)*o.Stride]
	case i < len(o.Ends):
		start := uint32(0)
		if i > 0 {
			start = o.Ends[i-1]
		}
		return o.Data[start:o.Ends[i]]
	}
	return nil
}

// AppendValue appends v, msgpack-encoded, as the next document's bytes: a
// result of the workload's own type. Value reads it back; msgpack is what
// the wire already speaks, so a client in another language reads it too.
func AppendValue[T any](o *Output, v T) error {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return fmt.Errorf("workload: encode %T: %w", v, err)
	}
	return o.AppendDoc(b)
}

// Value decodes document i's bytes, written by AppendValue, into a T.
func Value[T any](o *Output, i int) (T, error) {
	var v T
	dec := msgpack.NewDecoder(bytes.NewReader(o.Doc(i)))
	if err := dec.Decode(&v); err != nil {
		return v, fmt.Errorf("workload: decode document %d as %T: %w", i, v, err)
	}
	return v, nil
}
