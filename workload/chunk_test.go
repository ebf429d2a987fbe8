package workload

import (
	"slices"
	"strings"
	"testing"
)

func TestChunkSpans(t *testing.T) {
	words := func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteString(" ")
			}
			b.WriteString("w")
		}
		return b.String()
	}
	tests := []struct {
		name       string
		p          Params
		doc        string
		wantTokens []uint32
	}{
		{name: "empty", p: Params{ChunkTokens: 4, ChunkOverlap: 1}, doc: "", wantTokens: nil},
		{name: "no tokens", p: Params{ChunkTokens: 4, ChunkOverlap: 1}, doc: " ... ", wantTokens: nil},
		{name: "one short window", p: Params{ChunkTokens: 4, ChunkOverlap: 1}, doc: "  a b. ", wantTokens: []uint32{2}},
		{name: "exact window", p: Params{ChunkTokens: 4, ChunkOverlap: 1}, doc: words(4), wantTokens: []uint32{4}},
		{name: "overlap", p: Params{ChunkTokens: 4, ChunkOverlap: 1}, doc: words(10), wantTokens: []uint32{4, 4, 4}},
		{name: "ragged tail", p: Params{ChunkTokens: 4, ChunkOverlap: 2}, doc: words(7), wantTokens: []uint32{4, 4, 3}},
		{name: "defaults", p: Params{}, doc: words(600), wantTokens: []uint32{256, 256, 152}},
		{name: "unicode", p: Params{ChunkTokens: 2, ChunkOverlap: 1}, doc: "नमस्ते दुनिया 東京 🙂 x", wantTokens: []uint32{2, 2, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := mustNew(t, "chunk", tt.p)
			spans := process(t, w, []string{tt.doc}).Spans
			var got []uint32
			for _, s := range spans {
				got = append(got, s.Tokens)
			}
			if !slices.Equal(got, tt.wantTokens) {
				t.Fatalf("window tokens %v, want %v", got, tt.wantTokens)
			}
			checkSpans(t, tt.doc, spans, tt.p.WithDefaults())
		})
	}
}

// checkSpans asserts the documented invariants: offsets in range and
// increasing, the first at 0, the last at len(doc), no gap between
// neighbours, and each span's token count equal to what the tokenizer finds.
func checkSpans(t *testing.T, doc string, spans []Span, p Params) {
	t.Helper()
	for i, s := range spans {
		if s.Start > s.End || int(s.End) > len(doc) {
			t.Fatalf("span %d [%d,%d) invalid for %d bytes", i, s.Start, s.End, len(doc))
		}
		if i == 0 && s.Start != 0 {
			t.Fatalf("first span starts at %d", s.Start)
		}
		if i == len(spans)-1 && int(s.End) != len(doc) {
			t.Fatalf("last span ends at %d of %d", s.End, len(doc))
		}
		if i > 0 && (s.Start > spans[i-1].End || s.Start <= spans[i-1].Start) {
			t.Fatalf("span %d [%d,%d) after [%d,%d): gap or not increasing", i, s.Start, s.End, spans[i-1].Start, spans[i-1].End)
		}
		n := 0
		text := doc[s.Start:s.End]
		for a, b := nextToken(text, 0); a < b; a, b = nextToken(text, b) {
			n++
		}
		if uint32(n) != s.Tokens || n > p.ChunkTokens {
			t.Fatalf("span %d %q: %d tokens, Tokens %d, window %d", i, text, n, s.Tokens, p.ChunkTokens)
		}
	}
}

func TestChunkTestDocs(t *testing.T) {
	p := testParams.WithDefaults()
	w := mustNew(t, "chunk", testParams)
	for _, d := range testDocs {
		checkSpans(t, d, process(t, w, []string{d}).Spans, p)
	}
}
