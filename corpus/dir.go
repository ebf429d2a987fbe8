package corpus

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// dirSource yields each .txt/.md file under a directory as one document.
// Only the paths are held in memory; each file is read when its turn comes.
type dirSource struct {
	paths []string
	lim   Limits
	n     int
	err   error
}

func openDir(root string, lim Limits) (*dirSource, error) {
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && isTextFile(p) {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("corpus: walk %s: %w", root, err)
	}
	// WalkDir's per-directory order puts "a/b.txt" before "a.txt"; sort the
	// full paths so the order is the documented one.
	sort.Strings(paths)
	if lim.MaxDocs > 0 && int64(len(paths)) > lim.MaxDocs {
		return nil, fmt.Errorf("%w: %s: %d documents, more than max_docs %d", ErrLimit, root, len(paths), lim.MaxDocs)
	}
	return &dirSource{paths: paths, lim: lim}, nil
}

func isTextFile(p string) bool {
	ext := strings.ToLower(filepath.Ext(p))
	return ext == ".txt" || ext == ".md"
}

func (s *dirSource) Next() (Doc, error) {
	if s.err != nil {
		return Doc{}, s.err
	}
	if s.n >= len(s.paths) {
		return Doc{}, io.EOF
	}
	text, err := readLimited(s.paths[s.n], s.lim.MaxDocBytes)
	if err != nil {
		s.err = err
		return Doc{}, err
	}
	d := Doc{Index: int64(s.n), Text: text}
	s.n++
	return d, nil
}

// readLimited reads the file at p, failing if it holds more than max bytes.
// It reads at most max+1 bytes, so a file growing under us cannot blow the limit.
func readLimited(p string, max int) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("corpus: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > int64(max) {
		return "", fmt.Errorf("%w: %s: %d bytes, more than max_doc_bytes %d", ErrLimit, p, fi.Size(), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return "", fmt.Errorf("corpus: read %s: %w", p, err)
	}
	if len(b) > max {
		return "", fmt.Errorf("%w: %s: more than max_doc_bytes %d", ErrLimit, p, max)
	}
	return string(b), nil
}

// Len is -1, as for any --input, though the paths are known: returning
// len(paths) would let auto batching shrink the last batches, a change of
// behaviour left for its own commit.
func (s *dirSource) Len() int64 { return -1 }

func (s *dirSource) Close() error { return nil }
