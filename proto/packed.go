package proto

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/ferrylab/ferry/workload"
)

// packed is ferry's default codec: msgpack arrays in a fixed field order,
// with numeric columns (vectors, spans) written as one little-endian bin
// value each. Encoding is a few appends and one memmove per column; decoding
// copies each column once into an aligned slice and aliases document texts.
//
// Batch:  [id, attempt, token bin16, workload, [dim, chunk_tokens,
//
//	chunk_overlap, spin_cost_ns, out_bytes, seed, {args}], first, [doc...]]
//
// Result: [batch_id, attempt, token bin16, dim, vecs bin, spans bin, stride,
//
//	data bin, [[doc, msg]...], ends bin (only when per-document bytes vary)]
//
// The token comes third so that a worker which fails on a later field (a
// document over its limit) has already read it and can answer with it.
// docs/protocol.md specifies both for clients in other languages.
type packed struct{ lim Limits }

func (packed) Name() string { return CodecPacked }

// littleEndian reports whether the host stores numbers as the wire does, in
// which case columns are copied as raw memory.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

const spanSize = int(unsafe.Sizeof(workload.Span{}))

func (packed) AppendBatch(dst []byte, b *Batch) ([]byte, error) {
	dst = appendArrayLen(dst, 7)
	dst = appendUint(dst, b.ID)
	dst = appendUint(dst, uint64(b.Attempt))
	dst = appendToken(dst, &b.Token)
	dst = appendStr(dst, b.Workload)
	p := &b.Params
	dst = appendArrayLen(dst, 7)
	dst = appendInt(dst, int64(p.Dim))
	dst = appendInt(dst, int64(p.ChunkTokens))
	dst = appendInt(dst, int64(p.ChunkOverlap))
	dst = appendInt(dst, p.SpinCostNs)
	dst = appendInt(dst, int64(p.OutBytes))
	dst = appendUint(dst, p.Seed)
	dst = appendArgs(dst, p.Args)
	dst = appendInt(dst, b.First)
	dst = appendArrayLen(dst, len(b.Docs))
	for _, d := range b.Docs {
		dst = appendStr(dst, d)
	}
	return dst, nil
}

func (c packed) DecodeBatch(src []byte, b *Batch) error {
	if err := c.decodeBatch(src, b); err != nil {
		return fmt.Errorf("decode batch: %w", err)
	}
	return checkBatch(b, c.lim)
}

func (c packed) decodeBatch(src []byte, b *Batch) error {
	r := reader{b: src}
	n, err := r.arrayLen("batch", 1)
	if err != nil {
		return err
	}
	if n != 7 {
		return fmt.Errorf("batch has %d fields, want 7: %w", n, ErrMalformed)
	}
	if b.ID, err = r.uint("id"); err != nil {
		return err
	}
	att, err := r.uint("attempt")
	if err != nil {
		return err
	}
	if att > math.MaxUint32 {
		return fmt.Errorf("attempt %d: %w", att, ErrMalformed)
	}
	b.Attempt = uint32(att)
	if err := r.token(&b.Token); err != nil {
		return err
	}
	name, err := r.strBytes("workload", 64)
	if err != nil {
		return err
	}
	if b.Workload != string(name) { // a reused Batch keeps its name: no allocation
		b.Workload = string(name)
	}
	if err := decodeParams(&r, &b.Params); err != nil {
		return err
	}
	if b.First, err = r.int("first"); err != nil {
		return err
	}
	nd, err := r.arrayLen("docs", 1)
	if err != nil {
		return err
	}
	if nd > c.lim.MaxDocs {
		return fmt.Errorf("%d documents over the limit of %d: %w", nd, c.lim.MaxDocs, ErrLimit)
	}
	b.Docs = grow(b.Docs, nd)
	for i := range b.Docs {
		d, err := r.strBytes("doc", c.lim.MaxDocBytes)
		if err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
		b.Docs[i] = unsafe.String(unsafe.SliceData(d), len(d))
	}
	if r.remaining() != 0 {
		return fmt.Errorf("%d trailing bytes: %w", r.remaining(), ErrMalformed)
	}
	return nil
}

func decodeParams(r *reader, p *workload.Params) error {
	n, err := r.arrayLen("params", 1)
	if err != nil {
		return err
	}
	if n != 7 {
		return fmt.Errorf("params has %d fields, want 7: %w", n, ErrMalformed)
	}
	ints := []*int{&p.Dim, &p.ChunkTokens, &p.ChunkOverlap}
	for _, f := range ints {
		v, err := r.int("params")
		if err != nil {
			return err
		}
		if v < math.MinInt32 || v > math.MaxInt32 {
			return fmt.Errorf("params value %d out of range: %w", v, ErrMalformed)
		}
		*f = int(v)
	}
	if p.SpinCostNs, err = r.int("spin_cost_ns"); err != nil {
		return err
	}
	ob, err := r.int("out_bytes")
	if err != nil {
		return err
	}
	if ob < 0 || ob > math.MaxInt32 {
		return fmt.Errorf("out_bytes %d out of range: %w", ob, ErrMalformed)
	}
	p.OutBytes = int(ob)
	if p.Seed, err = r.uint("seed"); err != nil {
		return err
	}
	return decodeArgs(r, &p.Args)
}

func (packed) AppendResult(dst []byte, r *Result) ([]byte, error) {
	o := &r.Out
	dst = appendArrayLen(dst, 9+min(len(o.Ends), 1))
	dst = appendUint(dst, r.BatchID)
	dst = appendUint(dst, uint64(r.Attempt))
	dst = appendToken(dst, &r.Token)
	dst = appendInt(dst, int64(o.Dim))
	dst = appendBinHeader(dst, 4*len(o.Vecs))
	dst = appendFloats(dst, o.Vecs)
	dst = appendBinHeader(dst, spanSize*len(o.Spans))
	dst = appendSpans(dst, o.Spans)
	dst = appendInt(dst, int64(o.Stride))
	dst = appendBinHeader(dst, len(o.Data))
	dst = append(dst, o.Data...)
	dst = appendArrayLen(dst, len(r.Errs))
	for _, e := range r.Errs {
		dst = appendArrayLen(dst, 2)
		dst = appendUint(dst, uint64(e.Doc))
		dst = appendStr(dst, e.Msg)
	}
	return appendEnds(dst, o.Ends), nil
}

func (c packed) DecodeResult(src []byte, r *Result) error {
	if err := c.decodeResult(src, r); err != nil {
		return fmt.Errorf("decode result: %w", err)
	}
	return checkResult(r)
}

func (c packed) decodeResult(src []byte, r *Result) error {
	rd := reader{b: src}
	n, err := rd.arrayLen("result", 1)
	if err != nil {
		return err
	}
	if n != 9 && n != 10 {
		return fmt.Errorf("result has %d fields, want 9 or 10: %w", n, ErrMalformed)
	}
	if r.BatchID, err = rd.uint("batch_id"); err != nil {
		return err
	}
	att, err := rd.uint("attempt")
	if err != nil {
		return err
	}
	if att > math.MaxUint32 {
		return fmt.Errorf("attempt %d: %w", att, ErrMalformed)
	}
	r.Attempt = uint32(att)
	if err := rd.token(&r.Token); err != nil {
		return err
	}
	o := &r.Out
	dim, err := rd.int("dim")
	if err != nil {
		return err
	}
	if dim < 0 || dim > 1<<20 {
		return fmt.Errorf("dim %d out of range: %w", dim, ErrMalformed)
	}
	o.Dim = int(dim)
	vb, err := rd.strBytes("vecs", 0)
	if err != nil {
		return err
	}
	if len(vb)%4 != 0 {
		return fmt.Errorf("vecs: %d bytes is not whole float32s: %w", len(vb), ErrMalformed)
	}
	o.Vecs = decodeFloats(o.Vecs, vb)
	sb, err := rd.strBytes("spans", 0)
	if err != nil {
		return err
	}
	if len(sb)%spanSize != 0 {
		return fmt.Errorf("spans: %d bytes is not whole spans: %w", len(sb), ErrMalformed)
	}
	o.Spans = decodeSpans(o.Spans, sb)
	stride, err := rd.int("stride")
	if err != nil {
		return err
	}
	if stride < 0 || stride > math.MaxInt32 {
		return fmt.Errorf("stride %d out of range: %w", stride, ErrMalformed)
	}
	o.Stride = int(stride)
	db, err := rd.strBytes("data", 0)
	if err != nil {
		return err
	}
	o.Data = append(o.Data[:0], db...)
	ne, err := rd.arrayLen("errs", 3)
	if err != nil {
		return err
	}
	r.Errs = grow(r.Errs, ne)
	for i := range r.Errs {
		k, err := rd.arrayLen("err", 1)
		if err != nil {
			return fmt.Errorf("err %d: %w", i, err)
		}
		if k != 2 {
			return fmt.Errorf("err %d: want [doc, msg], got %d fields: %w", i, k, ErrMalformed)
		}
		doc, err := rd.uint("err doc")
		if err != nil {
			return err
		}
		if doc > math.MaxUint32 {
			return fmt.Errorf("err %d: doc %d: %w", i, doc, ErrMalformed)
		}
		msg, err := rd.strBytes("err msg", 1<<16)
		if err != nil {
			return err
		}
		r.Errs[i] = DocError{Doc: uint32(doc), Msg: string(msg)}
	}
	o.Ends = o.Ends[:0]
	if n == 10 {
		if o.Ends, err = decodeEnds(&rd, o.Ends); err != nil {
			return err
		}
	}
	if rd.remaining() != 0 {
		return fmt.Errorf("%d trailing bytes: %w", rd.remaining(), ErrMalformed)
	}
	return nil
}

func appendFloats(dst []byte, v []float32) []byte {
	if littleEndian {
		return append(dst, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))...)
	}
	for _, f := range v {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(f))
	}
	return dst
}

func decodeFloats(dst []float32, b []byte) []float32 {
	n := len(b) / 4
	dst = grow(dst, n)
	if littleEndian {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), 4*n), b)
		return dst
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return dst
}

func appendSpans(dst []byte, s []workload.Span) []byte {
	if littleEndian {
		return append(dst, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), spanSize*len(s))...)
	}
	for _, x := range s {
		dst = binary.LittleEndian.AppendUint32(dst, x.Doc)
		dst = binary.LittleEndian.AppendUint32(dst, x.Start)
		dst = binary.LittleEndian.AppendUint32(dst, x.End)
		dst = binary.LittleEndian.AppendUint32(dst, x.Tokens)
	}
	return dst
}

func decodeSpans(dst []workload.Span, b []byte) []workload.Span {
	n := len(b) / spanSize
	dst = grow(dst, n)
	if littleEndian {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), spanSize*n), b)
		return dst
	}
	le := binary.LittleEndian
	for i := range dst {
		o := b[spanSize*i:]
		dst[i] = workload.Span{Doc: le.Uint32(o), Start: le.Uint32(o[4:]), End: le.Uint32(o[8:]), Tokens: le.Uint32(o[12:])}
	}
	return dst
}
