package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// decoder is one way of reading untrusted bytes.
type decoder struct {
	name string
	fn   func([]byte) error
}

// Decoder names, as used in hostileCase.reject.
const (
	dPackedBatch   = "packed/batch"
	dPackedResult  = "packed/result"
	dMsgpackBatch  = "msgpack/batch"
	dMsgpackResult = "msgpack/result"
	dCheck         = "check"
)

func decoders(tb testing.TB) []decoder {
	tb.Helper()
	var ds []decoder
	for _, c := range codecs(tb) {
		ds = append(ds,
			decoder{name: c.Name() + "/batch", fn: func(b []byte) error { return c.DecodeBatch(b, new(Batch)) }},
			decoder{name: c.Name() + "/result", fn: func(b []byte) error { return c.DecodeResult(b, new(Result)) }},
		)
	}
	return append(ds, decoder{name: dCheck, fn: func(b []byte) error { return Check(b, Limits{}.WithDefaults().MaxDepth) }})
}

// allocBudget is what decoding msg may allocate: the promise Check makes.
func allocBudget(msg []byte) uint64 { return uint64(8*len(msg) + 1<<20) }

// measureAlloc returns the bytes fn allocates, with the collector off so
// nothing is freed or reused while it runs.
func measureAlloc(fn func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// decodeHostile runs d on msg and checks it does not panic, allocates within
// budget, and fails with one of the package's errors unless mayPass.
func decodeHostile(t *testing.T, d decoder, msg []byte, mayPass bool) {
	t.Helper()
	var err error
	var panicked any
	alloc := measureAlloc(func() {
		defer func() { panicked = recover() }()
		err = d.fn(msg)
	})
	if panicked != nil {
		t.Fatalf("%s panicked on %d bytes: %v", d.name, len(msg), panicked)
	}
	if got, max := alloc, allocBudget(msg); got > max {
		t.Errorf("%s allocated %d bytes decoding %d, want <= %d", d.name, got, len(msg), max)
	}
	switch {
	case err == nil && !mayPass:
		t.Errorf("%s accepted a hostile message of %d bytes", d.name, len(msg))
	case err != nil && !isDecodeErr(err):
		t.Errorf("%s error %q wraps none of ErrTruncated, ErrMalformed, ErrLimit", d.name, err)
	}
}

// Raw msgpack headers.

func hdr32(code byte, n uint32) []byte { return binary.BigEndian.AppendUint32([]byte{code}, n) }
func cat(parts ...[]byte) []byte       { return bytes.Join(parts, nil) }
func raw(b ...byte) []byte             { return b }
func arr(fields [][]byte) []byte       { return cat(appendArrayLen(nil, len(fields)), cat(fields...)) }
func u64(code byte, v uint64) []byte   { return binary.BigEndian.AppendUint64([]byte{code}, v) }

// packedBatchFields returns the seven top-level fields of b as packed writes
// them (params as one field), so a test can replace one.
func packedBatchFields(b *Batch) [][]byte {
	p := &b.Params
	params := [][]byte{appendInt(nil, int64(p.Dim)), appendInt(nil, int64(p.ChunkTokens)), appendInt(nil, int64(p.ChunkOverlap)),
		appendInt(nil, p.SpinCostNs), appendInt(nil, int64(p.OutBytes)), appendUint(nil, p.Seed), appendArgs(nil, p.Args)}
	docs := appendArrayLen(nil, len(b.Docs))
	for _, d := range b.Docs {
		docs = appendStr(docs, d)
	}
	return [][]byte{appendUint(nil, b.ID), appendUint(nil, uint64(b.Attempt)), appendToken(nil, &b.Token), appendStr(nil, b.Workload), arr(params), appendInt(nil, b.First), docs}
}

// packedParamFields returns the seven params fields of b.
func packedParamFields(b *Batch) [][]byte {
	p := packedBatchFields(b)[4]
	r := reader{b: p}
	r.arrayLen("", 1)
	var fs [][]byte
	for r.remaining() > 0 {
		start := r.off
		r.skip(1)
		fs = append(fs, p[start:r.off])
	}
	return fs
}

func packedResultFields(res *Result) [][]byte {
	enc, _ := packed{}.AppendResult(nil, res)
	r := reader{b: enc}
	r.arrayLen("", 1)
	var fs [][]byte
	for r.remaining() > 0 {
		start := r.off
		r.skip(16)
		fs = append(fs, enc[start:r.off])
	}
	return fs
}

func with(fields [][]byte, i int, v []byte) [][]byte {
	fs := slices.Clone(fields)
	fs[i] = v
	return fs
}

// msgpackWith encodes v as the msgpack codec does, then replaces the fields
// at the given dotted paths ("params.dim") with raw bytes.
func msgpackWith(tb testing.TB, v any, set map[string][]byte) []byte {
	tb.Helper()
	enc, err := msgpack.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := msgpack.Unmarshal(enc, &m); err != nil {
		tb.Fatal(err)
	}
	for path, b := range set {
		keys := strings.Split(path, ".")
		mm := m
		for _, k := range keys[:len(keys)-1] {
			mm = mm[k].(map[string]any)
		}
		mm[keys[len(keys)-1]] = msgpack.RawMessage(b)
	}
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	e.SetSortMapKeys(true)
	if err := e.Encode(m); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// repeatN returns a msgpack array of n copies of elem.
func repeatN(n int, elem []byte) []byte {
	return cat(appendArrayLen(nil, n), bytes.Repeat(elem, n))
}

type hostileCase struct {
	name string
	msg  []byte
	// reject lists the decoders msg is aimed at, which must fail on it. Every
	// decoder runs on it anyway, and none may panic or overspend.
	reject []string
}

func hostileCases(tb testing.TB) []hostileCase {
	tb.Helper()
	const huge = math.MaxUint32
	lim := Limits{}.WithDefaults()
	all := []string{dPackedBatch, dPackedResult, dMsgpackBatch, dMsgpackResult, dCheck}
	packedOnly := []string{dPackedBatch, dPackedResult} // wrong for packed, well-formed msgpack
	mpBatch := []string{dPackedBatch, dPackedResult, dMsgpackBatch}
	mpResult := []string{dPackedBatch, dPackedResult, dMsgpackResult}
	oneDoc := batchOf([]string{"doc"})
	bf := packedBatchFields(oneDoc)
	pf := packedParamFields(oneDoc)
	rf := packedResultFields(resultShapes[6].r)
	batchMap := func(set map[string][]byte) []byte { return msgpackWith(tb, oneDoc, set) }
	resultMap := func(set map[string][]byte) []byte { return msgpackWith(tb, resultShapes[6].r, set) }
	validPackedBatch, _ := packed{}.AppendBatch(nil, oneDoc)
	validMsgpackBatch, _ := reflectCodec{}.AppendBatch(nil, oneDoc)
	validPackedResult, _ := packed{}.AppendResult(nil, resultShapes[6].r)
	validMsgpackResult, _ := reflectCodec{}.AppendResult(nil, resultShapes[6].r)
	nest := func(n int, open []byte, leaf []byte) []byte { return cat(bytes.Repeat(open, n), leaf) }

	cases := []hostileCase{
		{name: "empty", msg: nil, reject: all},
		{name: "nil", msg: raw(0xc0), reject: packedOnly},
		{name: "reserved byte 0xc1", msg: raw(0xc1), reject: all},
		{name: "array32 of 2^32-1", msg: hdr32(0xdd, huge), reject: all},
		{name: "bin32 of 2^32-1", msg: hdr32(0xc6, huge), reject: all},
		{name: "str32 of 2^32-1", msg: hdr32(0xdb, huge), reject: all},
		{name: "map32 of 2^32-1", msg: hdr32(0xdf, huge), reject: all},
		{name: "ext32 of 2^32-1", msg: cat(hdr32(0xc9, huge), raw(1)), reject: all},
		{name: "array16 of 65535 nils", msg: cat(raw(0xdc, 0xff, 0xff), bytes.Repeat(raw(0xc0), 100)), reject: all},
		{name: "deep fixarray", msg: nest(10_000, raw(0x91), raw(0)), reject: all},
		{name: "deep fixmap", msg: nest(10_000, raw(0x81, 0xa0), raw(0)), reject: all},
		{name: "deep array32", msg: nest(10_000, hdr32(0xdd, 1), raw(0)), reject: all},
		{name: "deep in docs", msg: batchMap(map[string][]byte{"docs": nest(10_000, raw(0x91), raw(0xa0))}), reject: all},
		{name: "deep in unknown field", msg: batchMap(map[string][]byte{"zzz": nest(10_000, raw(0x91), raw(0))}), reject: all},
		{name: "deep in packed docs", msg: arr(with(bf, 6, nest(10_000, raw(0x91), raw(0xa0)))), reject: all},
		{name: "array32 docs of 2^32-1", msg: arr(with(bf, 6, hdr32(0xdd, huge))), reject: all},
		{name: "str32 doc of 2^32-1", msg: arr(with(bf, 6, cat(raw(0x91), hdr32(0xdb, huge)))), reject: all},
		{name: "str32 workload of 2^32-1", msg: arr(with(bf, 3, hdr32(0xdb, huge))), reject: all},
		{name: "bin32 vecs of 2^32-1", msg: arr(with(rf, 4, hdr32(0xc6, huge))), reject: all},
		{name: "bin32 spans of 2^32-1", msg: arr(with(rf, 5, hdr32(0xc6, huge))), reject: all},
		{name: "str32 data of 2^32-1", msg: arr(with(rf, 7, hdr32(0xdb, huge))), reject: all},
		{name: "array32 errs of 2^32-1", msg: arr(with(rf, 8, hdr32(0xdd, huge))), reject: all},
		{name: "msgpack docs array32 of 2^32-1", msg: batchMap(map[string][]byte{"docs": hdr32(0xdd, huge)}), reject: all},
		{name: "msgpack Vecs array32 of 2^32-1", msg: resultMap(map[string][]byte{"out.Vecs": hdr32(0xdd, huge)}), reject: all},
		{name: "msgpack Spans array32 of 2^32-1", msg: resultMap(map[string][]byte{"out.Spans": hdr32(0xdd, huge)}), reject: all},
		{name: "msgpack Data bin32 of 2^32-1", msg: resultMap(map[string][]byte{"out.Data": hdr32(0xc6, huge)}), reject: all},
		{name: "msgpack errs array32 of 2^32-1", msg: resultMap(map[string][]byte{"errs": hdr32(0xdd, huge)}), reject: all},
		{name: "msgpack errs map32 element", msg: resultMap(map[string][]byte{"errs": cat(raw(0x91), hdr32(0xdf, huge))}), reject: all},

		{name: "packed batch trailing byte", msg: cat(validPackedBatch, raw(0)), reject: all},
		{name: "msgpack batch trailing nil", msg: cat(validMsgpackBatch, raw(0xc0)), reject: all},
		{name: "packed result trailing byte", msg: cat(validPackedResult, raw(0)), reject: all},
		{name: "msgpack result trailing byte", msg: cat(validMsgpackResult, raw(0)), reject: all},
		{name: "two batches", msg: cat(validPackedBatch, validPackedBatch), reject: all},

		// Counts and sizes over the limits.
		{name: "packed docs over MaxDocs", msg: arr(with(bf, 6, repeatN(lim.MaxDocs+1, raw(0xa0)))), reject: packedOnly},
		{name: "msgpack docs over MaxDocs", msg: batchMap(map[string][]byte{"docs": repeatN(lim.MaxDocs+1, raw(0xa0))}), reject: all},
		{name: "packed doc over MaxDocBytes", msg: arr(with(bf, 6, cat(raw(0x91), appendStr(nil, strings.Repeat("x", lim.MaxDocBytes+1))))), reject: packedOnly},
		{name: "msgpack doc over MaxDocBytes", msg: batchMap(map[string][]byte{"docs": cat(raw(0x91), appendStr(nil, strings.Repeat("x", lim.MaxDocBytes+1)))}), reject: mpBatch},
		// At the limits: accepting is fine, the allocation bound still holds.
		{name: "packed MaxDocs empty docs", msg: arr(with(bf, 6, repeatN(lim.MaxDocs, raw(0xa0))))},
		{name: "msgpack MaxDocs empty docs", msg: batchMap(map[string][]byte{"docs": repeatN(lim.MaxDocs, raw(0xa0))})},
		{name: "msgpack 40k empty errs", msg: resultMap(map[string][]byte{"errs": repeatN(40_000, raw(0x80))})},
		{name: "msgpack 40k nil spans", msg: resultMap(map[string][]byte{"out.Spans": repeatN(40_000, raw(0xc0))})},
		{name: "msgpack 200k empty errs", msg: resultMap(map[string][]byte{"errs": repeatN(200_000, raw(0x80))}), reject: all},
		{name: "packed 200k empty errs", msg: arr(with(rf, 8, repeatN(200_000, raw(0x92, 0, 0xa0))))},

		// Negative and overflowing integers.
		{name: "packed id -1", msg: arr(with(bf, 0, raw(0xff))), reject: packedOnly},
		{name: "packed id int64 min", msg: arr(with(bf, 0, u64(0xd3, 1<<63))), reject: packedOnly},
		{name: "packed attempt 2^32", msg: arr(with(bf, 1, u64(0xcf, 1<<32))), reject: packedOnly},
		{name: "packed first -1", msg: arr(with(bf, 5, raw(0xff))), reject: packedOnly},
		{name: "packed first 2^64-1", msg: arr(with(bf, 5, u64(0xcf, math.MaxUint64))), reject: packedOnly},
		{name: "packed dim 2^40", msg: arr(with(bf, 4, arr(with(pf, 0, u64(0xd3, 1<<40))))), reject: packedOnly},
		{name: "packed chunk_tokens -2^31-1", msg: arr(with(bf, 4, arr(with(pf, 1, u64(0xd3, uint64(minInt32Less1)))))), reject: packedOnly},
		{name: "packed out_bytes -1", msg: arr(with(bf, 4, arr(with(pf, 4, raw(0xff))))), reject: packedOnly},
		{name: "packed seed -1", msg: arr(with(bf, 4, arr(with(pf, 5, raw(0xff))))), reject: packedOnly},
		{name: "packed spin_cost 2^63", msg: arr(with(bf, 4, arr(with(pf, 3, u64(0xcf, 1<<63))))), reject: packedOnly},
		{name: "packed result id -1", msg: arr(with(rf, 0, raw(0xff))), reject: packedOnly},
		{name: "packed result attempt 2^32", msg: arr(with(rf, 1, u64(0xcf, 1<<32))), reject: packedOnly},
		{name: "packed dim -1", msg: arr(with(rf, 3, raw(0xff))), reject: packedOnly},
		{name: "packed dim 2^21", msg: arr(with(rf, 3, appendUint(nil, 1<<21))), reject: packedOnly},
		{name: "packed stride -1", msg: arr(with(rf, 6, raw(0xff))), reject: packedOnly},
		{name: "packed stride 2^40", msg: arr(with(rf, 6, appendUint(nil, 1<<40))), reject: packedOnly},
		{name: "packed err doc 2^32", msg: arr(with(rf, 8, cat(raw(0x91, 0x92), u64(0xcf, 1<<32), raw(0xa0)))), reject: packedOnly},
		{name: "packed err doc -1", msg: arr(with(rf, 8, raw(0x91, 0x92, 0xff, 0xa0))), reject: packedOnly},
		{name: "msgpack first -1", msg: batchMap(map[string][]byte{"first": raw(0xff)}), reject: mpBatch},
		{name: "msgpack Dim -1", msg: resultMap(map[string][]byte{"out.Dim": raw(0xff)}), reject: mpResult},
		{name: "msgpack Stride -1", msg: resultMap(map[string][]byte{"out.Stride": raw(0xff)}), reject: mpResult},

		// Columns inconsistent with each other.
		{name: "packed vecs not whole floats", msg: arr(with(rf, 4, raw(0xc4, 3, 1, 2, 3))), reject: packedOnly},
		{name: "packed spans not whole spans", msg: arr(with(rf, 5, cat(raw(0xc4, 15), make([]byte, 15)))), reject: packedOnly},
		{name: "packed vecs not a multiple of dim", msg: arr(with(rf, 4, cat(raw(0xc4, 8), make([]byte, 8)))), reject: packedOnly},
		{name: "packed data not a multiple of stride", msg: arr(with(rf, 7, raw(0xc4, 3, 1, 2, 3))), reject: packedOnly},
		{name: "msgpack Vecs not a multiple of Dim", msg: resultMap(map[string][]byte{"out.Vecs": raw(0x92, 0, 0)}), reject: mpResult},
		{name: "packed ends not whole uint32s", msg: arr(append(slices.Clone(rf), raw(0xc4, 3, 1, 2, 3))), reject: packedOnly},
		{name: "packed ends past the data", msg: arr(append(slices.Clone(rf), raw(0xc4, 4, 0xff, 0, 0, 0))), reject: packedOnly},
		{name: "packed ends going back", msg: arr(append(with(rf, 7, raw(0xc4, 2, 1, 2)), raw(0xc4, 8, 2, 0, 0, 0, 1, 0, 0, 0))), reject: packedOnly},
		{name: "packed args not a map", msg: arr(with(bf, 4, arr(with(pf, 6, raw(0x91, 0))))), reject: packedOnly},
		{name: "packed args nested deeper than scalars", msg: arr(with(bf, 4, arr(with(pf, 6, raw(0x81, 0xa1, 'k', 0x91, 0x91, 0))))), reject: packedOnly},
		{name: "packed result 11 fields", msg: arr(append(slices.Clone(rf), raw(0xc4, 0), raw(0))), reject: packedOnly},
		{name: "packed batch 6 fields", msg: arr(bf[:6]), reject: packedOnly},
		{name: "packed batch 8 fields", msg: arr(append(slices.Clone(bf), raw(0))), reject: packedOnly},
		{name: "packed params 6 fields", msg: arr(with(bf, 4, arr(pf[:6]))), reject: packedOnly},
		{name: "packed result 8 fields", msg: arr(rf[:8]), reject: packedOnly},
		{name: "packed batch token of 15 bytes", msg: arr(with(bf, 2, cat(raw(0xc4, 15), make([]byte, 15)))), reject: packedOnly},
		{name: "packed batch token of 17 bytes", msg: arr(with(bf, 2, cat(raw(0xc4, 17), make([]byte, 17)))), reject: packedOnly},
		{name: "packed batch nil token", msg: arr(with(bf, 2, raw(0xc0))), reject: packedOnly},
		{name: "packed result token of 0 bytes", msg: arr(with(rf, 2, raw(0xc4, 0))), reject: packedOnly},
		{name: "msgpack batch token of 17 bytes", msg: batchMap(map[string][]byte{"token": cat(raw(0xc4, 17), make([]byte, 17))}), reject: mpBatch},
		{name: "msgpack result token of 17 bytes", msg: resultMap(map[string][]byte{"token": cat(raw(0xc4, 17), make([]byte, 17))}), reject: mpResult},
		{name: "packed err with 3 fields", msg: arr(with(rf, 8, raw(0x91, 0x93, 0, 0xa0, 0))), reject: packedOnly},
		{name: "packed workload over 64 bytes", msg: arr(with(bf, 3, appendStr(nil, strings.Repeat("w", 65)))), reject: packedOnly},
	}

	// Wrong types in each field. A str is no number, array or bin; a map is
	// no str or bin; neither decoder coerces them.
	str, mp := raw(0xa1, 'x'), raw(0x80)
	batchWrong := [][]byte{str, str, mp, mp, str, str, str}
	for i, v := range batchWrong {
		cases = append(cases, hostileCase{name: fmt.Sprintf("packed batch field %d wrong type", i), msg: arr(with(bf, i, v)), reject: packedOnly})
	}
	paramWrong := [][]byte{str, str, str, str, str, str, str}
	for i, v := range paramWrong {
		cases = append(cases, hostileCase{name: fmt.Sprintf("packed params field %d wrong type", i), msg: arr(with(bf, 4, arr(with(pf, i, v)))), reject: packedOnly})
	}
	resultWrong := [][]byte{str, str, mp, str, mp, mp, str, mp, str}
	for i, v := range resultWrong {
		cases = append(cases, hostileCase{name: fmt.Sprintf("packed result field %d wrong type", i), msg: arr(with(rf, i, v)), reject: packedOnly})
	}
	cases = append(cases,
		hostileCase{name: "packed doc wrong type", msg: arr(with(bf, 6, raw(0x91, 0x01))), reject: packedOnly},
		hostileCase{name: "packed err wrong type", msg: arr(with(rf, 8, raw(0x91, 0xa0))), reject: packedOnly},
		hostileCase{name: "packed err doc wrong type", msg: arr(with(rf, 8, raw(0x91, 0x92, 0xa0, 0xa0))), reject: packedOnly},
		hostileCase{name: "packed err msg wrong type", msg: arr(with(rf, 8, raw(0x91, 0x92, 0x00, 0x80))), reject: packedOnly},
	)
	for _, k := range []string{"id", "attempt", "token", "workload", "params", "first", "docs",
		"params.dim", "params.chunk_tokens", "params.chunk_overlap", "params.spin_cost_ns", "params.out_bytes", "params.seed", "params.args"} {
		v := str
		if k == "workload" || k == "token" {
			v = mp
		}
		cases = append(cases, hostileCase{name: "msgpack batch " + k + " wrong type", msg: batchMap(map[string][]byte{k: v}), reject: mpBatch})
	}
	cases = append(cases, hostileCase{name: "msgpack doc wrong type", msg: batchMap(map[string][]byte{"docs": raw(0x91, 0x80)}), reject: mpBatch})
	for _, k := range []string{"batch_id", "attempt", "token", "out", "errs", "out.Dim", "out.Vecs", "out.Spans", "out.Stride", "out.Data"} {
		v := str
		if k == "out.Data" || k == "token" {
			v = mp
		}
		cases = append(cases, hostileCase{name: "msgpack result " + k + " wrong type", msg: resultMap(map[string][]byte{k: v}), reject: mpResult})
	}
	cases = append(cases,
		hostileCase{name: "msgpack vec wrong type", msg: resultMap(map[string][]byte{"out.Vecs": raw(0x91, 0xa0)}), reject: mpResult},
		hostileCase{name: "msgpack span wrong type", msg: resultMap(map[string][]byte{"out.Spans": raw(0x91, 0xa0)}), reject: mpResult},
		hostileCase{name: "msgpack err msg wrong type", msg: resultMap(map[string][]byte{"errs": raw(0x91, 0x81, 0xa3, 'm', 's', 'g', 0x80)}), reject: mpResult},
	)
	return cases
}

// TestHostileBaseline: the packed fields the hostile cases edit one at a
// time decode as they are, so each case is rejected for its own edit.
func TestHostileBaseline(t *testing.T) {
	b := batchOf([]string{"doc"})
	b.Token = Token{1, 2, 3}
	var got Batch
	if err := (packed{lim: Limits{}.WithDefaults()}).DecodeBatch(arr(packedBatchFields(b)), &got); err != nil || got.Token != b.Token {
		t.Errorf("batch from its fields: %v, token %v", err, got.Token)
	}
	var r Result
	if err := (packed{}).DecodeResult(arr(packedResultFields(resultShapes[6].r)), &r); err != nil {
		t.Errorf("result from its fields: %v", err)
	}
}

func TestHostile(t *testing.T) {
	ds := decoders(t)
	for _, tc := range hostileCases(t) {
		for _, d := range ds {
			t.Run(tc.name+"/decoder="+d.name, func(t *testing.T) {
				decodeHostile(t, d, tc.msg, !slices.Contains(tc.reject, d.name))
			})
		}
	}
}

// TestHostilePrefixes feeds every proper prefix of valid messages of both
// codecs to every decoder: all must fail, and a decoder reading its own
// codec's output must call it truncated.
func TestHostilePrefixes(t *testing.T) {
	type msg struct {
		name, codec string
		b           []byte
	}
	var msgs []msg
	for _, c := range codecs(t) {
		for _, s := range batchShapes {
			if s.name == "100 docs of 600 bytes" || s.name == "long strings" {
				continue // every prefix of these is too slow to measure; small shapes cover the same code
			}
			b, _ := c.AppendBatch(nil, s.b)
			msgs = append(msgs, msg{"batch " + s.name, c.Name(), b})
		}
		for _, s := range resultShapes {
			if s.name == "embed 100x384" || s.name == "spans" || s.name == "data and stride" {
				continue
			}
			b, _ := c.AppendResult(nil, s.r)
			msgs = append(msgs, msg{"result " + s.name, c.Name(), b})
		}
	}
	for _, d := range decoders(t) {
		for _, m := range msgs {
			t.Run(fmt.Sprintf("decoder=%s/codec=%s/%s", d.name, m.codec, m.name), func(t *testing.T) {
				for n := range len(m.b) {
					p := m.b[:n:n] // capacity n: reading past the prefix must fault, not see the rest
					decodeHostile(t, d, p, false)
					own := d.name == dCheck || strings.HasPrefix(d.name, m.codec+"/") && strings.HasPrefix(m.name, strings.TrimPrefix(d.name, m.codec+"/"))
					if err := d.fn(p); own && !errors.Is(err, ErrTruncated) {
						t.Errorf("prefix of %d/%d bytes: error %v, want ErrTruncated", n, len(m.b), err)
					}
					if t.Failed() {
						t.Fatalf("prefix %x", p)
					}
				}
			})
		}
	}
}

var minInt32Less1 int64 = math.MinInt32 - 1
