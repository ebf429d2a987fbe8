package main

import (
	"errors"
	"io"
)

// pregenMaxBytes is the largest generated corpus run keeps in memory.
const pregenMaxBytes = 256 << 20

// pregenerate generates the corpus once, before any mode runs, when it is
// generated (no --input) and small enough to hold; nil otherwise. Streamed,
// the generator ran on the coordinator inside every mode's timing, about
// 5 us of CPU per document: common to all modes, it diluted their
// differences, and in goroutines mode its one goroutine competed with the
// lanes for the same cores and starved them (54% busy against 86%), while
// in processes mode it ran beside the workers (docs/wire.md).
func pregenerate(o *Options) ([]string, error) {
	words := o.DocWords
	est := o.Docs * int64(7*words+2)
	if o.DocBytes > 0 {
		est = o.Docs * int64(o.DocBytes)
	}
	if o.Input != "" || est > pregenMaxBytes {
		return nil, nil
	}
	src, err := openSource(o)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	docs := make([]string, 0, o.Docs)
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
