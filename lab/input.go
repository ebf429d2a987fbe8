package lab

import (
	"errors"
	"fmt"
	"io"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
)

// Input says where a job's documents come from: a file or folder (Path),
// or else the generated corpus (Gen).
type Input struct {
	Path   string           // a file (one document per line, or .jsonl) or a folder; "" = generated
	Limits corpus.Limits    // bounds on Path's documents
	Gen    corpus.GenConfig // the generated corpus, when Path is ""
}

// Validate checks the input's keys, naming the one at fault.
func (in Input) Validate() error {
	bad := func(key string, v any, why string) error {
		return fmt.Errorf("%w: %s=%v: %s", coordinator.ErrInvalidConfig, key, v, why)
	}
	switch {
	case in.Gen.Docs < 0:
		return bad("docs", in.Gen.Docs, "must be positive")
	case in.Gen.Words < 0:
		return bad("doc_words", in.Gen.Words, "must be at least 1")
	case in.Gen.DocBytes < 0:
		return bad("doc_bytes", in.Gen.DocBytes, "must be positive")
	case in.Limits.MaxDocBytes < 0:
		return bad("max_doc_bytes", in.Limits.MaxDocBytes, "must be at least 1")
	case in.Limits.MaxDocs < 0:
		return bad("max_docs", in.Limits.MaxDocs, "must be positive (0 = unlimited)")
	}
	return nil
}

// open opens the input.
func (in Input) open() (corpus.Source, error) {
	if in.Path != "" {
		src, err := corpus.Open(in.Path, in.Limits)
		if err != nil {
			return nil, fmt.Errorf("%w: input=%s: %v", coordinator.ErrInvalidConfig, in.Path, err)
		}
		return src, nil
	}
	return corpus.Generated(in.Gen)
}

// total is the number of documents when known before reading, else -1.
func (in Input) total() int64 {
	if in.Path != "" {
		return -1
	}
	return in.Gen.Docs
}

// pregenMaxBytes is the largest generated corpus Run keeps in memory.
const pregenMaxBytes = 256 << 20

// fits reports whether n generated documents fit in pregenMaxBytes.
func (in Input) fits(n int64) bool {
	est := n * int64(7*in.Gen.Words+2)
	if in.Gen.DocBytes > 0 {
		est = n * int64(in.Gen.DocBytes)
	}
	return est <= pregenMaxBytes
}

// pregenerate generates the corpus once, before any mode runs, when it is
// generated (no Path) and small enough to hold; nil otherwise. Streamed,
// the generator ran on the coordinator inside every mode's timing, about
// 5 us of CPU per document: common to all modes, it diluted their
// differences, and in goroutines mode its one goroutine competed with the
// lanes for the same cores and starved them (54% busy against 86%), while
// in processes mode it ran beside the workers (docs/wire.md).
func (in Input) pregenerate() ([]string, error) {
	if in.Path != "" || !in.fits(in.Gen.Docs) {
		return nil, nil
	}
	src, err := in.open()
	if err != nil {
		return nil, err
	}
	defer src.Close()
	docs := make([]string, 0, in.Gen.Docs)
	for {
		d, err := src.Next()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, d.Text)
	}
}
