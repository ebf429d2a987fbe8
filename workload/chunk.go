package workload

import (
	"fmt"
	"math"
	"sync"
)

// chunk splits each document into windows of ChunkTokens tokens, neighbours
// sharing ChunkOverlap tokens, as a RAG pipeline does before embedding.
//
// Span offsets are chosen so the spans of a document cover every byte of it:
// the first window starts at byte 0, the last ends at len(doc), and any other
// window ends where the token after its last one starts (so its trailing
// separators belong to it). With ChunkOverlap 0 the spans tile the document.
// A document without tokens yields no span.
type chunk struct {
	tokens, overlap int
}

func newChunk(p Params) (Workload, error) {
	return &chunk{tokens: p.ChunkTokens, overlap: p.ChunkOverlap}, nil
}

func (c *chunk) Name() string { return "chunk" }

// ResultBytes bounds the spans (16 bytes each) by the most tokens a
// document of its length can hold: a token and a separator are a byte each.
func (c *chunk) ResultBytes(docs []string) int64 {
	step := int64(c.tokens - c.overlap)
	var n int64
	for _, d := range docs {
		n += (int64(len(d))+1)/2/step + 1
	}
	return 16 * n
}

// tokenStarts is the pooled scratch of token start offsets of one document.
var tokenStarts = sync.Pool{New: func() any { return new([]uint32) }}

// Process appends the spans of every document, in document order.
func (c *chunk) Process(docs []string, out *Output) error {
	sp := tokenStarts.Get().(*[]uint32)
	defer tokenStarts.Put(sp)
	for i, d := range docs {
		if len(d) > math.MaxUint32 {
			return fmt.Errorf("chunk: document %d is %d bytes, more than 4 GiB", i, len(d))
		}
		starts := (*sp)[:0]
		for s, e := nextToken(d, 0); s < e; s, e = nextToken(d, e) {
			starts = append(starts, uint32(s))
		}
		*sp = starts
		n := len(starts)
		step := c.tokens - c.overlap
		for a := 0; a < n; a += step {
			b := min(a+c.tokens, n)
			span := Span{Doc: uint32(i), Start: starts[a], End: uint32(len(d)), Tokens: uint32(b - a)}
			if a == 0 {
				span.Start = 0
			}
			if b < n {
				span.End = starts[b]
			}
			out.Spans = append(out.Spans, span)
			if b == n {
				break
			}
		}
	}
	return nil
}
