package sink

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"unsafe"

	"github.com/ferrylab/ferry/workload"
)

// npyHeaderLen is the fixed header size: the row count is unknown until the
// stream ends, so the header is written padded and rewritten on Close.
const npyHeaderLen = 128

// NPY writes a float32 matrix in the NumPy .npy v1.0 format, one row per
// input document: row i is document i. A failed document's row is NaN
// (numpy.isnan(m).all(axis=1) finds them). When every document failed the
// width is never learnt and the matrix is (documents, 0).
type NPY struct {
	f    *os.File
	w    *bufio.Writer
	rows int64
	dim  int
	nans int64 // failed rows met before the width was known, not written yet
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
		if !slices.Contains(failed, false) { // all failed: rows of a width still unknown
			n.nans += int64(len(failed))
			return nil
		}
		return errors.New("npy output needs a vector workload (embed, infer); use .jsonl")
	}
	if n.dim == 0 {
		n.dim = o.Dim
		if err := n.writeNaNs(n.nans); err != nil {
			return err
		}
		n.nans = 0
	} else if n.dim != o.Dim {
		return fmt.Errorf("npy: row width changed from %d to %d", n.dim, o.Dim)
	}
	if len(o.Vecs) < len(failed)*o.Dim {
		return fmt.Errorf("npy: %d floats for %d rows of %d", len(o.Vecs), len(failed), o.Dim)
	}
	for i := 0; i < len(failed); {
		if failed[i] {
			if err := n.writeNaNs(1); err != nil {
				return err
			}
			i++
			continue
		}
		j := i + 1 // rows [i, j) all computed: written in one go
		for j < len(failed) && !failed[j] {
			j++
		}
		if err := n.writeRows(o.Vecs[i*o.Dim : j*o.Dim]); err != nil {
			return err
		}
		n.rows += int64(j - i)
		i = j
	}
	return nil
}

// writeRows writes v as little-endian float32: the vectors' own memory on
// a little-endian host (no conversion, no copy but bufio's), converted
// through n.buf elsewhere. Per float conversion cost 6 us a document at
// embed's 384 dimensions.
func (n *NPY) writeRows(v []float32) error {
	if littleEndian {
		_, err := n.w.Write(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v)))
		return err
	}
	n.buf = n.buf[:0]
	for _, x := range v {
		n.buf = binary.LittleEndian.AppendUint32(n.buf, math.Float32bits(x))
	}
	_, err := n.w.Write(n.buf)
	return err
}

// littleEndian reports whether the host stores float32 as .npy's '<f4' does.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// writeNaNs writes k rows of NaN.
func (n *NPY) writeNaNs(k int64) error {
	n.buf = n.buf[:0]
	for range n.dim {
		n.buf = binary.LittleEndian.AppendUint32(n.buf, math.Float32bits(float32(math.NaN())))
	}
	for range k {
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
		_, err = n.f.WriteAt(npyHeader(n.rows+n.nans, n.dim), 0)
	}
	if cerr := n.f.Close(); err == nil {
		err = cerr
	}
	return err
}
