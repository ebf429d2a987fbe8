// Package sink writes a job's results, in input order, as they are
// flushed: a .npy float32 matrix (numpy.load reads it directly) for vector
// workloads, or JSON lines for anything. Writer is ferry's one result sink:
// the coordinator writes every job's results to one. JSONLines writes any
// other records one JSON value a line (the pipeline's merged documents).
// It holds no results in memory, and it does not order, hash or count them
// (the coordinator does).
package sink

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferrylab/ferry/workload"
)

// Writer receives a job's results in input order, from one goroutine at a
// time.
type Writer interface {
	// Write gets documents [first, first+len(failed)) of the input. Row i of
	// out belongs to document first+i; failed[i] marks a document with no
	// result (its row is zero and it must not be written). out is reused
	// once Write returns. An error ends the job.
	Write(first int64, out *workload.Output, failed []bool) error
	// Close finishes the output (flushes and closes a file). The
	// coordinator never calls it: whoever opened the Writer does.
	Close() error
}

// FailureWriter is a Writer that also keeps why documents failed. The
// coordinator calls WriteFailures with the failures among documents
// [first, first+n) just before it Writes those documents; errs[i].Doc counts
// from first.
type FailureWriter interface {
	Writer
	WriteFailures(first int64, errs []workload.DocError) error
}

// WriteFunc adapts a function to a Writer whose Close does nothing.
type WriteFunc func(first int64, out *workload.Output, failed []bool) error

// Write calls f.
func (f WriteFunc) Write(first int64, out *workload.Output, failed []bool) error {
	return f(first, out, failed)
}

// Close does nothing.
func (f WriteFunc) Close() error { return nil }

// Discard drops results (the digest is still computed by the coordinator).
type Discard struct{}

func (Discard) Write(int64, *workload.Output, []bool) error { return nil }
func (Discard) Close() error                                { return nil }

// Create starts the output file at path and picks the format from its
// extension: .npy or .jsonl. Results go to a temporary file in the same
// folder; Commit renames it onto path, so nothing at path changes until the
// job succeeded.
func Create(path string) (*File, error) {
	ext := strings.ToLower(filepath.Ext(path))
	if ext != ".npy" && ext != ".jsonl" && ext != ".json" && ext != ".ndjson" {
		return nil, fmt.Errorf("output %s: unknown extension (want .npy or .jsonl)", path)
	}
	f, a, err := createTemp(path)
	if err != nil {
		return nil, err
	}
	var w Writer
	if ext == ".npy" {
		if w, err = newNPY(f); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
	} else {
		w = &JSONL{lines: newJSONLines(f, 1<<20)}
	}
	return &File{Writer: w, atomic: a}, nil
}

// File is an output file written under a temporary name beside its path.
// Commit closes it and renames it onto the path; Close without Commit
// keeps what was written as Partial (a failed or interrupted run never
// destroys an earlier output).
//
// Failed documents have no result in the file (a .npy row of NaN, no
// .jsonl record); WriteFailures lists them in Failures(), <path>.failed.jsonl,
// one {"index":N,"error":"..."} a line in input order, written and
// committed the same way. A run without failures writes no such file and
// removes one left by an earlier run, which described the output replaced.
type File struct {
	Writer
	atomic
	failures *JSONLines // nil until a document fails
}

type failure struct {
	Index int64  `json:"index"`
	Error string `json:"error"`
}

// WriteFailures appends the failures among documents from first on to
// Failures().
func (f *File) WriteFailures(first int64, errs []workload.DocError) error {
	if len(errs) == 0 {
		return nil
	}
	if f.failures == nil {
		j, err := CreateJSONLines(f.Failures())
		if err != nil {
			return err
		}
		f.failures = j
	}
	for _, e := range errs {
		if err := f.failures.Encode(failure{Index: first + int64(e.Doc), Error: e.Msg}); err != nil {
			return fmt.Errorf("output %s: %w", f.Failures(), err)
		}
	}
	return nil
}

// Failures is the file listing the failed documents: <path>.failed.jsonl.
func (f *File) Failures() string { return f.path + ".failed.jsonl" }

// Commit finishes the file and its failures file and renames them onto
// their paths, the failures first.
func (f *File) Commit() error {
	var err error
	if f.failures != nil {
		err = f.failures.Commit()
	} else if rerr := os.Remove(f.Failures()); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = fmt.Errorf("remove the earlier %s: %w", f.Failures(), rerr)
	}
	if err != nil {
		f.Close()
		return err
	}
	return f.commit(f.Writer.Close)
}

// Close finishes the file as Partial unless Commit was called (its
// failures, if any, as Failures() + ".partial").
func (f *File) Close() error {
	var err error
	if f.failures != nil {
		err = f.failures.Close()
	}
	return errors.Join(f.abandon(f.Writer.Close), err)
}

// atomic is a temporary file that becomes path on commit, or
// path.partial when abandoned.
type atomic struct {
	path, tmp string
	done      bool
}

// createTemp creates the temporary file for path, in path's folder so the
// rename stays on one file system.
func createTemp(path string) (*os.File, atomic, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, atomic{}, fmt.Errorf("create output: %w", err)
	}
	_ = f.Chmod(0o644) // CreateTemp makes it 0600; an output is as readable as os.Create's
	return f, atomic{path: path, tmp: f.Name()}, nil
}

// Partial is where Close without Commit leaves the output.
func (a *atomic) Partial() string { return a.path + ".partial" }

func (a *atomic) commit(closeFile func() error) error {
	if a.done {
		return nil
	}
	a.done = true
	if err := closeFile(); err != nil {
		os.Remove(a.tmp)
		return err
	}
	if err := os.Rename(a.tmp, a.path); err != nil {
		os.Remove(a.tmp)
		return fmt.Errorf("output %s: %w", a.path, err)
	}
	return nil
}

func (a *atomic) abandon(closeFile func() error) error {
	if a.done {
		return nil
	}
	a.done = true
	err := closeFile()
	if rerr := os.Rename(a.tmp, a.Partial()); rerr != nil {
		os.Remove(a.tmp)
		err = errors.Join(err, rerr)
	}
	return err
}

// JSONL writes one JSON object per document that has a result:
// {"index":N,"vec":[...]} for vectors, "spans":[{"start","end","tokens"}]
// for chunks, "data" (base64) for opaque payloads.
type JSONL struct {
	lines *JSONLines
}

type span struct {
	Start  uint32 `json:"start"`
	End    uint32 `json:"end"`
	Tokens uint32 `json:"tokens"`
}

type record struct {
	Index int64     `json:"index"`
	Vec   []float32 `json:"vec,omitempty"`
	Spans []span    `json:"spans,omitempty"`
	Data  string    `json:"data,omitempty"`
}

func (j *JSONL) Write(first int64, o *workload.Output, failed []bool) error {
	si := 0
	for i, f := range failed {
		rec := record{Index: first + int64(i)}
		for ; si < len(o.Spans) && int(o.Spans[si].Doc) <= i; si++ {
			if s := o.Spans[si]; int(s.Doc) == i {
				rec.Spans = append(rec.Spans, span{s.Start, s.End, s.Tokens})
			}
		}
		if f {
			continue
		}
		if o.Dim > 0 {
			rec.Vec = o.Vecs[i*o.Dim : (i+1)*o.Dim]
		}
		if d := o.Doc(i); len(d) > 0 {
			rec.Data = base64.StdEncoding.EncodeToString(d)
		}
		if err := j.lines.Encode(&rec); err != nil {
			return err
		}
	}
	return nil
}

func (j *JSONL) Close() error { return j.lines.Close() }

// JSONLines writes one JSON value per line to a file, through a buffer:
// for records that are not a workload.Output, such as the pipeline's
// merged documents. It is not safe for concurrent use.
type JSONLines struct {
	f   *os.File
	w   *bufio.Writer
	enc *json.Encoder
	atomic
}

// CreateJSONLines starts the file at path, written as File is: under a
// temporary name, renamed onto path by Commit, kept as Partial by Close.
func CreateJSONLines(path string) (*JSONLines, error) {
	f, a, err := createTemp(path)
	if err != nil {
		return nil, err
	}
	j := newJSONLines(f, 1<<16)
	j.atomic = a
	return j, nil
}

func newJSONLines(f *os.File, size int) *JSONLines {
	w := bufio.NewWriterSize(f, size)
	return &JSONLines{f: f, w: w, enc: json.NewEncoder(w)}
}

// Encode writes v as JSON (encoding/json's Encoder, HTML escaping on) and
// a newline.
func (j *JSONLines) Encode(v any) error { return j.enc.Encode(v) }

// Commit flushes and closes the file and renames it onto its path.
func (j *JSONLines) Commit() error { return j.commit(j.close) }

// Close flushes and closes the file; one made by CreateJSONLines is kept
// as Partial unless Commit was called.
func (j *JSONLines) Close() error {
	if j.tmp == "" {
		return j.close()
	}
	return j.abandon(j.close)
}

func (j *JSONLines) close() error {
	err := j.w.Flush()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	return err
}
