package proto

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ferrylab/ferry/workload"
)

// codecs returns both codecs with default limits.
func codecs(tb testing.TB) []Codec {
	tb.Helper()
	var cs []Codec
	for _, name := range CodecNames() {
		c, err := NewCodec(name, Limits{})
		if err != nil {
			tb.Fatalf("NewCodec(%q): %v", name, err)
		}
		cs = append(cs, c)
	}
	return cs
}

// words returns n pseudo-random lowercase words joined by spaces.
func words(rng *rand.Rand, n int) string {
	var sb strings.Builder
	for i := range n {
		if i > 0 {
			sb.WriteByte(' ')
		}
		for range 3 + rng.IntN(6) {
			sb.WriteByte(byte('a' + rng.IntN(26)))
		}
	}
	return sb.String()
}

// docsOf returns n documents of about size bytes each.
func docsOf(n, size int) []string {
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	docs := make([]string, n)
	for i := range docs {
		docs[i] = words(rng, size/6)
	}
	return docs
}

func testParams() workload.Params {
	return workload.Params{Dim: 384, ChunkTokens: 256, ChunkOverlap: 32, SpinCostNs: 200_000, OutBytes: 16, Seed: 7}
}

// testToken is the token of the test shapes (so the fuzz seeds hold one);
// maxToken has every bit set.
var (
	testToken = Token{0x9e, 0x37, 0x79, 0xb9, 0x7f, 0x4a, 0x7c, 0x15, 0xf3, 0x9c, 0xc0, 0x60, 0x5c, 0xed, 0xc8, 0x34}
	maxToken  = Token{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

func batchOf(docs []string) *Batch {
	return &Batch{ID: 42, Attempt: 1, Token: testToken, Workload: "embed", Params: testParams(), First: 1000, Docs: docs}
}

// embedResult is a result of n rows of dim float32.
func embedResult(n, dim int) *Result {
	rng := rand.New(rand.NewPCG(2, uint64(n*dim)))
	v := make([]float32, n*dim)
	for i := range v {
		v[i] = rng.Float32()*2 - 1
	}
	return &Result{BatchID: 42, Attempt: 1, Token: testToken, Out: workload.Output{Dim: dim, Vecs: v}}
}

// chunkResult is a result with n spans.
func chunkResult(n int) *Result {
	s := make([]workload.Span, n)
	for i := range s {
		s[i] = workload.Span{Doc: uint32(i / 4), Start: uint32(i%4) * 900, End: uint32(i%4)*900 + 1200, Tokens: 256}
	}
	return &Result{BatchID: 7, Attempt: 2, Token: testToken, Out: workload.Output{Spans: s}}
}

func dataResult(n, stride int) *Result {
	d := make([]byte, n*stride)
	for i := range d {
		d[i] = byte(i * 31)
	}
	return &Result{BatchID: 9, Attempt: 1, Token: testToken, Out: workload.Output{Stride: stride, Data: d}}
}

// longArgs are workload args of every kind, one string long.
var longArgs = func() workload.Args {
	a, err := workload.MakeArgs(map[string]any{"text": strings.Repeat("p", 300), "n": -70000, "f": 0.25, "on": true, "none": nil})
	if err != nil {
		panic(err)
	}
	return a
}()

var batchShapes = []struct {
	name string
	b    *Batch
}{
	{name: "empty", b: &Batch{}},
	{name: "zero docs", b: batchOf(nil)},
	{name: "one doc", b: batchOf([]string{"hello world"})},
	{name: "100 docs of 600 bytes", b: batchOf(docsOf(100, 600))},
	{name: "unicode", b: batchOf([]string{"héllo wörld", "日本語のテキスト", "emoji 🚢⛴️", "", "\x00nul\x00", "ελληνικά"})},
	{name: "long strings", b: &Batch{ID: math.MaxUint64, Attempt: math.MaxUint32, Token: maxToken, Workload: strings.Repeat("w", 64),
		Params: workload.Params{Dim: -1, ChunkTokens: math.MaxInt32, ChunkOverlap: math.MinInt32, SpinCostNs: math.MinInt64,
			OutBytes: math.MaxInt32, Seed: math.MaxUint64, Args: longArgs},
		First: math.MaxInt64 - 1, Docs: []string{strings.Repeat("x", 70_000), strings.Repeat("y", 255), strings.Repeat("z", 256)}}},
}

var resultShapes = []struct {
	name string
	r    *Result
}{
	{name: "empty", r: &Result{}},
	{name: "embed 1x4", r: embedResult(1, 4)},
	{name: "embed 100x384", r: embedResult(100, 384)},
	{name: "spans", r: chunkResult(400)},
	{name: "data and stride", r: dataResult(100, 16)},
	{name: "errs", r: &Result{BatchID: 3, Attempt: 1, Out: workload.Output{Dim: 2, Vecs: []float32{1, 2, 0, 0, 5, 6}},
		Errs: []DocError{{Doc: 1, Msg: "panic: boom"}, {Doc: math.MaxUint32, Msg: ""}, {Doc: 2, Msg: strings.Repeat("e", 40)}}}},
	{name: "all columns", r: &Result{BatchID: 1 << 40, Attempt: 3, Token: maxToken,
		Out:  workload.Output{Dim: 3, Vecs: []float32{-0.5, 1e-30, 3e30}, Spans: chunkResult(3).Out.Spans, Stride: 2, Data: []byte{1, 2}},
		Errs: []DocError{{Doc: 0, Msg: "x"}}}},
	{name: "bytes of any length", r: &Result{BatchID: 9, Attempt: 1, Out: workload.Output{Data: []byte("abcdefg"), Ends: []uint32{0, 3, 3, 7}},
		Errs: []DocError{{Doc: 2, Msg: "empty"}}}},
}

// normBatch returns a copy of b with empty slices made nil, so the codecs'
// different choices between nil and empty compare equal.
func normBatch(b Batch) Batch {
	if len(b.Docs) == 0 {
		b.Docs = nil
	}
	return b
}

func normResult(r Result) Result {
	if len(r.Out.Vecs) == 0 {
		r.Out.Vecs = nil
	}
	if len(r.Out.Spans) == 0 {
		r.Out.Spans = nil
	}
	if len(r.Out.Data) == 0 {
		r.Out.Data = nil
	}
	if len(r.Out.Ends) == 0 {
		r.Out.Ends = nil
	}
	if len(r.Errs) == 0 {
		r.Errs = nil
	}
	return r
}

// sameResult compares results with floats by their bits, so NaNs from fuzzed
// input compare equal to themselves.
func sameResult(a, b Result) bool {
	a, b = normResult(a), normResult(b)
	if len(a.Out.Vecs) != len(b.Out.Vecs) {
		return false
	}
	for i := range a.Out.Vecs {
		if math.Float32bits(a.Out.Vecs[i]) != math.Float32bits(b.Out.Vecs[i]) {
			return false
		}
	}
	a.Out.Vecs, b.Out.Vecs = nil, nil
	return reflect.DeepEqual(a, b)
}

func TestCodecBatchRoundTrip(t *testing.T) {
	for _, c := range codecs(t) {
		for _, tc := range batchShapes {
			t.Run(fmt.Sprintf("codec=%s/%s", c.Name(), tc.name), func(t *testing.T) {
				enc, err := c.AppendBatch(nil, tc.b)
				if err != nil {
					t.Fatalf("AppendBatch: %v", err)
				}
				var got Batch
				if err := c.DecodeBatch(enc, &got); err != nil {
					t.Fatalf("DecodeBatch: %v", err)
				}
				if got, want := normBatch(got), normBatch(*tc.b); !reflect.DeepEqual(got, want) {
					t.Errorf("round trip:\n got %+.200v\nwant %+.200v", got, want)
				}
				var v any
				if err := msgpack.Unmarshal(enc, &v); err != nil {
					t.Errorf("output is not valid msgpack: %v", err)
				}
				// Appending keeps what dst already holds.
				prefix := []byte("prefix")
				enc2, err := c.AppendBatch(append([]byte(nil), prefix...), tc.b)
				if err != nil {
					t.Fatalf("AppendBatch: %v", err)
				}
				if got, want := string(enc2), string(prefix)+string(enc); got != want {
					t.Errorf("AppendBatch with a prefix wrote different bytes")
				}
			})
		}
	}
}

func TestCodecResultRoundTrip(t *testing.T) {
	for _, c := range codecs(t) {
		for _, tc := range resultShapes {
			t.Run(fmt.Sprintf("codec=%s/%s", c.Name(), tc.name), func(t *testing.T) {
				enc, err := c.AppendResult(nil, tc.r)
				if err != nil {
					t.Fatalf("AppendResult: %v", err)
				}
				var got Result
				if err := c.DecodeResult(enc, &got); err != nil {
					t.Fatalf("DecodeResult: %v", err)
				}
				if got, want := normResult(got), normResult(*tc.r); !reflect.DeepEqual(got, want) {
					t.Errorf("round trip:\n got %+.200v\nwant %+.200v", got, want)
				}
				var v any
				if err := msgpack.Unmarshal(enc, &v); err != nil {
					t.Errorf("output is not valid msgpack: %v", err)
				}
			})
		}
	}
}

// TestCodecDecodeReuse decodes a large value then a small one into the same
// destination: nothing of the first may leak into the second.
func TestCodecDecodeReuse(t *testing.T) {
	for _, c := range codecs(t) {
		t.Run("codec="+c.Name(), func(t *testing.T) {
			var r Result
			for _, want := range []*Result{resultShapes[6].r, embedResult(100, 384), resultShapes[5].r, {}} {
				enc, err := c.AppendResult(nil, want)
				if err != nil {
					t.Fatal(err)
				}
				if err := c.DecodeResult(enc, &r); err != nil {
					t.Fatal(err)
				}
				if got, want := normResult(r), normResult(*want); !reflect.DeepEqual(got, want) {
					t.Errorf("decode into reused result: got %+.200v, want %+.200v", got, want)
				}
			}
			var b Batch
			for _, want := range []*Batch{batchShapes[3].b, batchShapes[2].b, {}} {
				enc, err := c.AppendBatch(nil, want)
				if err != nil {
					t.Fatal(err)
				}
				if err := c.DecodeBatch(enc, &b); err != nil {
					t.Fatal(err)
				}
				if got, want := normBatch(b), normBatch(*want); !reflect.DeepEqual(got, want) {
					t.Errorf("decode into reused batch: got %+.200v, want %+.200v", got, want)
				}
			}
		})
	}
}

// TestPackedSize holds packed to its promise: an embedding result costs its
// raw float bytes plus a few header bytes.
func TestPackedSize(t *testing.T) {
	tests := []struct {
		name string
		r    *Result
		raw  int
	}{
		{name: "embed100", r: embedResult(100, 384), raw: 100 * 384 * 4},
		{name: "chunk100", r: chunkResult(400), raw: 400 * 16},
		{name: "data", r: dataResult(100, 16), raw: 100 * 16},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := packed{}.AppendResult(nil, tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if got, max := float64(len(enc)), 1.01*float64(tc.raw)+64; got > max {
				t.Errorf("packed size = %v bytes, want <= %v (raw %d)", got, max, tc.raw)
			}
		})
	}
}

func TestNewCodec(t *testing.T) {
	tests := []struct {
		name, codec, want string
		wantErr           bool
	}{
		{name: "default", codec: "", want: CodecPacked},
		{name: "packed", codec: CodecPacked, want: CodecPacked},
		{name: "msgpack", codec: CodecMsgpack, want: CodecMsgpack},
		{name: "unknown", codec: "json", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewCodec(tc.codec, Limits{})
			if got, want := err != nil, tc.wantErr; got != want {
				t.Fatalf("NewCodec(%q) error = %v, want error %v", tc.codec, err, want)
			}
			if err == nil {
				if got, want := c.Name(), tc.want; got != want {
					t.Errorf("Name() = %q, want %q", got, want)
				}
			}
		})
	}
}

// isDecodeErr reports whether err wraps one of the package's sentinels.
func isDecodeErr(err error) bool {
	return errors.Is(err, ErrTruncated) || errors.Is(err, ErrMalformed) || errors.Is(err, ErrLimit)
}

func TestHeaderSize(t *testing.T) {
	h := map[string][]string{"Ferry-Worker": {"w1"}, "Ferry-Stages-Ns": {"1 2 3"}}
	want := len("NATS/1.0\r\nFerry-Worker: w1\r\nFerry-Stages-Ns: 1 2 3\r\n\r\n")
	if got := HeaderSize(h); got != want {
		t.Errorf("HeaderSize = %d, want %d", got, want)
	}
	if got := HeaderSize(nil); got != 0 {
		t.Errorf("HeaderSize(nil) = %d, want 0 (no header block)", got)
	}
}
