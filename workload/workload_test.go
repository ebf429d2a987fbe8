package workload

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
)

// testDocs covers the tokenizer's edge cases: empty, separators only, case,
// non-ASCII letters and marks, CJK, emoji, invalid UTF-8, a long document.
var testDocs = []string{
	"",
	"  \t\n.,;  ",
	"The quick brown fox jumps over the lazy dog.",
	"THE QUICK brown FOX",
	"Ünïcödé Straße ÇA VA? Ωμέγα",
	"नमस्ते दुनिया",
	"東京 は 日本 の 首都",
	"emoji 🙂 between 🚀 words",
	"bad \xff\xfe utf8 \xc3",
	"a",
	strings.Repeat("lorem ipsum dolor sit amet 42 ", 200),
}

// testParams keeps spin cheap and chunk windows small so tests split docs.
var testParams = Params{SpinCostNs: 2000, ChunkTokens: 16, ChunkOverlap: 4, OutBytes: 24}

func mustNew(tb testing.TB, name string, p Params) Workload {
	tb.Helper()
	w, err := New(name, p)
	if err != nil {
		tb.Fatalf("New(%q): %v", name, err)
	}
	return w
}

func process(tb testing.TB, w Workload, docs []string) *Output {
	tb.Helper()
	out := new(Output)
	if err := w.Process(docs, out); err != nil {
		tb.Fatalf("%s.Process: %v", w.Name(), err)
	}
	return out
}

// outputBytes is a bit-exact serialisation for comparing outputs.
func outputBytes(o *Output) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, int64(o.Dim))
	for _, v := range o.Vecs {
		binary.Write(&b, binary.LittleEndian, math.Float32bits(v))
	}
	binary.Write(&b, binary.LittleEndian, o.Spans)
	binary.Write(&b, binary.LittleEndian, int64(o.Stride))
	b.Write(o.Data)
	return b.Bytes()
}

func TestDeterministic(t *testing.T) {
	for _, name := range Names() {
		t.Run("name="+name, func(t *testing.T) {
			a := process(t, mustNew(t, name, testParams), testDocs)
			b := process(t, mustNew(t, name, testParams), testDocs)
			if !bytes.Equal(outputBytes(a), outputBytes(b)) {
				t.Fatal("two runs over the same docs differ")
			}
		})
	}
}

// Modes split a job into batches differently, so a batch's output must be
// the concatenation of its documents' outputs (Span.Doc renumbered).
func TestBatchEqualsSingles(t *testing.T) {
	for _, name := range Names() {
		t.Run("name="+name, func(t *testing.T) {
			w := mustNew(t, name, testParams)
			batch := process(t, w, testDocs)
			var cat Output
			for i, d := range testDocs {
				one := process(t, w, []string{d})
				cat.Dim, cat.Stride = one.Dim, one.Stride
				cat.Vecs = append(cat.Vecs, one.Vecs...)
				for _, s := range one.Spans {
					s.Doc = uint32(i)
					cat.Spans = append(cat.Spans, s)
				}
				cat.Data = append(cat.Data, one.Data...)
			}
			if !bytes.Equal(outputBytes(batch), outputBytes(&cat)) {
				t.Fatal("batch output != concatenation of single-document outputs")
			}
		})
	}
}

// Process appends: a reused, Reset Output gives the same bytes as a new one.
func TestOutputReuse(t *testing.T) {
	for _, name := range Names() {
		t.Run("name="+name, func(t *testing.T) {
			w := mustNew(t, name, testParams)
			want := outputBytes(process(t, w, testDocs))
			out := process(t, w, testDocs[2:5])
			out.Reset()
			if err := w.Process(testDocs, out); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(outputBytes(out), want) {
				t.Fatal("reused output differs")
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name    string
		p       Params
		wantErr string // "" = valid
	}{
		{name: "zero is defaults", p: Params{}},
		{name: "small window default overlap", p: Params{ChunkTokens: 8}},
		{name: "negative dim", p: Params{Dim: -1}, wantErr: "dim -1 must be >= 0"},
		{name: "negative spin", p: Params{SpinCostNs: -5}, wantErr: "spin_cost_ns -5"},
		{name: "negative out bytes", p: Params{OutBytes: -1}, wantErr: "out_bytes -1"},
		{name: "negative overlap", p: Params{ChunkOverlap: -1}, wantErr: "chunk_overlap -1"},
		{name: "huge dim", p: Params{Dim: 1 << 20}, wantErr: "dim 1048576 must be <= 4096"},
		{name: "overlap not below tokens", p: Params{ChunkOverlap: 300},
			wantErr: "chunk_overlap 300 must be < chunk_tokens 256"},
		{name: "overlap equals tokens", p: Params{ChunkTokens: 10, ChunkOverlap: 10},
			wantErr: "chunk_overlap 10 must be < chunk_tokens 10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New("embed", tt.p)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalidParams) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want ErrInvalidParams containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewUnknown(t *testing.T) {
	_, err := New("nope", Params{})
	if !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), "embed") {
		t.Fatalf("New(nope) = %v, want ErrUnknown listing known names", err)
	}
}
