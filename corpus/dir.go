package corpus

import (
	"errors"
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
//
// Only regular files are documents. Symbolic links are never followed, not
// even to a file inside the folder: whether a link leads out of the folder
// can change between the walk and the read. A named pipe would block the
// read forever and a device has no end. A .txt or .md entry of any of these
// kinds stops the job with ErrNotRegular naming it; the user decides (copy
// the file in, or move the entry out), since skipping it silently would drop
// a document. Entries with other names are not documents and are ignored.
type dirSource struct {
	paths []string
	lim   Limits
	n     int
	err   error
}

func openDir(root string, lim Limits) (*dirSource, error) {
	return openDirWalk(root, lim, nil)
}

// openDirWalk is openDir, calling onDoc (when not nil) for each document
// the walk finds: the walk stops at the first one past lim.MaxDocs.
func openDirWalk(root string, lim Limits, onDoc func()) (*dirSource, error) {
	// The root was named by the user: a link to a folder is fine there.
	if r, err := filepath.EvalSymlinks(root); err == nil {
		root = r
	}
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !isTextFile(p) {
			return nil
		}
		if kind := notRegular(d.Type()); kind != "" {
			return fmt.Errorf("%w: %s: %s; an input folder's documents must be regular files (links are not followed)", ErrNotRegular, p, kind)
		}
		if onDoc != nil {
			onDoc()
		}
		if lim.MaxDocs > 0 && int64(len(paths)) >= lim.MaxDocs {
			return fmt.Errorf("%w: %s: more than max_docs %d documents", ErrLimit, root, lim.MaxDocs)
		}
		paths = append(paths, p)
		return nil
	})
	if errors.Is(err, ErrNotRegular) || errors.Is(err, ErrLimit) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("corpus: walk %s: %w", root, err)
	}
	// WalkDir's per-directory order puts "a/b.txt" before "a.txt"; sort the
	// full paths so the order is the documented one.
	sort.Strings(paths)
	return &dirSource{paths: paths, lim: lim}, nil
}

// notRegular names the kind of a directory entry that is not a regular
// file, or returns "" for a regular one.
func notRegular(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return ""
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file (" + m.String() + ")"
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
	// The walk saw a regular file; if it was swapped for a link or a pipe
	// since, openFlags makes the open fail or return at once, and Stat says so.
	f, err := os.OpenFile(p, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return "", fmt.Errorf("corpus: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("corpus: %w", err)
	}
	if kind := notRegular(fi.Mode()); kind != "" {
		return "", fmt.Errorf("%w: %s: %s; an input folder's documents must be regular files", ErrNotRegular, p, kind)
	}
	if fi.Size() > int64(max) {
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
