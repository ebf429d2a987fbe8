// Package corpus streams the documents ferry's workloads process: a
// deterministic synthetic corpus (Generated), files on disk (Open) or texts
// already in memory (Slice). Source is ferry's one input interface: the
// coordinator, the pipeline and the sweep all read it. Sources hand out one
// document at a time so a job of any size runs in bounded memory; this
// package never batches, schedules or interprets the text.
package corpus

import (
	"errors"
	"io"
	"iter"
)

// ErrLimit is wrapped by the errors for a document over Limits.MaxDocBytes
// or a source with more than Limits.MaxDocs documents.
var ErrLimit = errors.New("corpus: limit exceeded")

// ErrNotRegular is wrapped by the error for an entry of an input folder
// that is not a regular file (a symbolic link, a named pipe, a device):
// such entries are refused, never followed or opened.
var ErrNotRegular = errors.New("corpus: not a regular file")

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
	// Len is the number of documents in the whole source, or -1 when it is
	// not known before the end (files). A known length lets auto batching
	// shrink batches near the end.
	Len() int64
	// Close releases the open file, if any.
	Close() error
}

// SliceSource yields texts held in memory, in order.
type SliceSource struct {
	texts []string
	next  int
}

// Slice returns a Source over texts; document i is texts[i].
func Slice(texts []string) *SliceSource { return &SliceSource{texts: texts} }

// Next returns the next document, or io.EOF after the last.
func (s *SliceSource) Next() (Doc, error) {
	if s.next == len(s.texts) {
		return Doc{}, io.EOF
	}
	s.next++
	return Doc{Index: int64(s.next - 1), Text: s.texts[s.next-1]}, nil
}

// Len is the number of texts.
func (s *SliceSource) Len() int64 { return int64(len(s.texts)) }

// Close does nothing; a SliceSource holds no resources.
func (s *SliceSource) Close() error { return nil }

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
