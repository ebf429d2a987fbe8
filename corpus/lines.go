package corpus

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// lineSource reads one document per line (plain) or per JSON line.
type lineSource struct {
	r     io.ReadCloser
	sc    *bufio.Scanner
	name  string
	lim   Limits
	jsonl bool
	line  int   // lines read, for error locations
	n     int64 // documents returned
	err   error // sticky: io.EOF or the first error
}

func newLineSource(r io.ReadCloser, name string, lim Limits, jsonl bool) *lineSource {
	maxLine := lim.MaxDocBytes + 2 // room for "\r\n" so an exact-limit line fits
	if jsonl {
		// JSON escaping can take up to 6 bytes per text byte ("\u0000");
		// the text itself is checked against MaxDocBytes after decoding.
		maxLine = 6*lim.MaxDocBytes + 4096
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, min(64<<10, maxLine)), maxLine)
	return &lineSource{r: r, sc: sc, name: name, lim: lim, jsonl: jsonl}
}

func (s *lineSource) Next() (Doc, error) {
	if s.err != nil {
		return Doc{}, s.err
	}
	d, err := s.next()
	if err != nil {
		s.err = err
		return Doc{}, err
	}
	return d, nil
}

func (s *lineSource) next() (Doc, error) {
	for s.sc.Scan() {
		s.line++
		line := s.sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		text, err := s.text(line)
		if err != nil {
			return Doc{}, err
		}
		if s.lim.MaxDocs > 0 && s.n >= s.lim.MaxDocs {
			return Doc{}, fmt.Errorf("%w: %s:%d: more than max_docs %d documents", ErrLimit, s.name, s.line, s.lim.MaxDocs)
		}
		d := Doc{Index: s.n, Text: text}
		s.n++
		return d, nil
	}
	if err := s.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return Doc{}, fmt.Errorf("%w: %s:%d: line longer than max_doc_bytes %d", ErrLimit, s.name, s.line+1, s.lim.MaxDocBytes)
		}
		return Doc{}, fmt.Errorf("corpus: read %s: %w", s.name, err)
	}
	return Doc{}, io.EOF
}

// text returns the document in line, checked against MaxDocBytes.
func (s *lineSource) text(line []byte) (string, error) {
	if !s.jsonl {
		if len(line) > s.lim.MaxDocBytes {
			return "", s.tooLong()
		}
		return string(line), nil
	}
	var rec struct {
		Text *string `json:"text"`
	}
	if err := json.Unmarshal(line, &rec); err != nil {
		return "", fmt.Errorf("corpus: %s:%d: bad JSON: %w", s.name, s.line, err)
	}
	if rec.Text == nil {
		return "", fmt.Errorf("corpus: %s:%d: missing string field \"text\"", s.name, s.line)
	}
	if len(*rec.Text) > s.lim.MaxDocBytes {
		return "", s.tooLong()
	}
	return *rec.Text, nil
}

func (s *lineSource) tooLong() error {
	return fmt.Errorf("%w: %s:%d: document longer than max_doc_bytes %d", ErrLimit, s.name, s.line, s.lim.MaxDocBytes)
}

// Len is -1: the documents are counted only by reading them.
func (s *lineSource) Len() int64 { return -1 }

func (s *lineSource) Close() error { return s.r.Close() }
