// Package corpus streams the documents ferry's workloads process: a
// deterministic synthetic corpus (Generated) or files on disk (Open). Sources
// hand out one document at a time so a job of any size runs in bounded memory;
// this package never batches, schedules or interprets the text.
package corpus

import (
	"errors"
	"io"
	"iter"
)

// ErrLimit is wrapped by the errors for a document over Limits.MaxDocBytes
// or a source with more than Limits.MaxDocs documents.
var ErrLimit = errors.New("corpus: limit exceeded")

// ErrInvalidConfig is wrapped by GenConfig validation errors.
var ErrInvalidConfig = errors.New("corpus: invalid config")

// Doc is one document and its position in its source, counting from 0.
type Doc struct {
	Index int64
	Text  string
}

// Source yields documents in a fixed order. It is a pull interface rather
// than an iter.Seq so a coordinator can fill a batch, stop, and resume at its
// own pace; All adapts it to a range loop. A Source is not safe for
// concurrent use.
type Source interface {
	// Next returns the next document, or io.EOF after the last. After any
	// other error the source is finished and returns that error again.
	Next() (Doc, error)
	// Close releases the open file, if any.
	Close() error
}

// All ranges over the rest of s. It stops after yielding the first error
// other than io.EOF; it does not close s.
func All(s Source) iter.Seq2[Doc, error] {
	return func(yield func(Doc, error) bool) {
		for {
			d, err := s.Next()
			if err == io.EOF {
				return
			}
			if !yield(d, err) || err != nil {
				return
			}
		}
	}
}
