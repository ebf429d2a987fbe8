package sink

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/ferrylab/ferry/workload"
)

// npyHeaderLen is the fixed header size: the row count is unknown until the
// stream ends, so the header is written padded and rewritten on Close.
const npyHeaderLen = 128

// NPY writes a float32 matrix, one row per document with a result, in the
// NumPy .npy v1.0 format.
type NPY struct {
	f    *os.File
	w    *bufio.Writer
	rows int64
	dim  int
	buf  []byte
}

func newNPY(f *os.File) (*NPY, error) {
	n := &NPY{f: f, w: bufio.NewWriterSize(f, 1<<20)}
	if _, err := n.w.Write(npyHeader(0, 0)); err != nil {
		f.Close()
		return nil, err
	}
	return n, nil
}

func npyHeader(rows int64, dim int) []byte {
	dict := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows, dim)
	pad := npyHeaderLen - 10 - len(dict) - 1
	h := make([]byte, 0, npyHeaderLen)
	h = append(h, "\x93NUMPY\x01\x00"...)
	h = binary.LittleEndian.AppendUint16(h, uint16(npyHeaderLen-10))
	h = append(h, dict...)
	h = append(h, strings.Repeat(" ", pad)...)
	return append(h, '\n')
}

func (n *NPY) Write(first int64, o *workload.Output, failed []bool) error {
	if o.Dim == 0 {
		if len(o.Spans) > 0 || o.Stride > 0 || len(o.Ends) > 0 {
			return errors.New("npy output needs a vector workload (embed, infer); use .jsonl")
		}
		return nil
	}
	if n.dim == 0 {
		n.dim = o.Dim
	} else if n.dim != o.Dim {
		return fmt.Errorf("npy: row width changed from %d to %d", n.dim, o.Dim)
	}
	for i, f := range failed {
		if f {
			continue
		}
		n.buf = n.buf[:0]
		for _, v := range o.Vecs[i*o.Dim : (i+1)*o.Dim] {
			n.buf = binary.LittleEndian.AppendUint32(n.buf, math.Float32bits(v))
		}
		if _, err := n.w.Write(n.buf); err != nil {
			return err
		}
		n.rows++
	}
	return nil
}

// Close writes the final shape into the header and closes the file.
func (n *NPY) Close() error {
	err := n.w.Flush()
	if err == nil {
		_, err = n.f.WriteAt(npyHeader(n.rows, n.dim), 0)
	}
	if cerr := n.f.Close(); err == nil {
		err = cerr
	}
	return err
}
