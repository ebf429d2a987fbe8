package corpus

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DefaultMaxDocBytes is Limits.MaxDocBytes when zero.
const DefaultMaxDocBytes = 1 << 20

// Limits bound what Open accepts, so a stray binary file or a runaway
// input fails with a clear error instead of exhausting a worker's memory.
type Limits struct {
	MaxDocBytes int   // largest document in bytes; 0 = 1 MiB
	MaxDocs     int64 // most documents; 0 = unlimited
}

func (l Limits) withDefaults() Limits {
	if l.MaxDocBytes <= 0 {
		l.MaxDocBytes = DefaultMaxDocBytes
	}
	return l
}

// Open streams the documents at path, choosing the format from it:
//   - a directory: each .txt or .md file below it is one document, in
//     sorted path order;
//   - a file ending in .jsonl: one document per line, from the string field
//     "text" (blank lines are skipped, other fields ignored);
//   - any other file: one document per line that is not blank.
//
// Lines end at "\n" with an optional "\r". A document over lim.MaxDocBytes,
// or more than lim.MaxDocs documents, is an error wrapping ErrLimit that
// names the location; nothing is truncated silently.
func Open(path string, lim Limits) (Source, error) {
	lim = lim.withDefaults()
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("corpus: open: %w", err)
	}
	if fi.IsDir() {
		return openDir(path, lim)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("corpus: open: %w", err)
	}
	if strings.EqualFold(filepath.Ext(path), ".jsonl") {
		return newLineSource(f, path, lim, true), nil
	}
	return newLineSource(f, path, lim, false), nil
}
