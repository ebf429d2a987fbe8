package corpus

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeFiles creates files (path -> content) under a fresh temp dir.
func writeFiles(tb testing.TB, files map[string]string) string {
	tb.Helper()
	dir := tb.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// readAll drains s and returns its texts and the first error.
func readAll(tb testing.TB, s Source) ([]string, error) {
	tb.Helper()
	tb.Cleanup(func() { s.Close() })
	var texts []string
	for d, err := range All(s) {
		if err != nil {
			return texts, err
		}
		if got, want := d.Index, int64(len(texts)); got != want {
			tb.Fatalf("doc Index %d, want %d", got, want)
		}
		texts = append(texts, d.Text)
	}
	return texts, nil
}

func TestOpen(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		name    string
		files   map[string]string
		open    string // path under the temp dir; "" = the dir itself
		lim     Limits
		want    []string
		wantErr string // substring; "" = no error
		isLimit bool   // error wraps ErrLimit
	}{
		{name: "lines", files: map[string]string{"a.txt": "one\n\n  \ntwo\r\nthree"}, open: "a.txt",
			want: []string{"one", "two", "three"}},
		{name: "empty file", files: map[string]string{"e.csv": ""}, open: "e.csv", want: nil},
		{name: "jsonl", files: map[string]string{"d.jsonl": `{"text":"héllo","id":1}` + "\n\n" + `{"text":"a\nb"}` + "\n"},
			open: "d.jsonl", want: []string{"héllo", "a\nb"}},
		{name: "jsonl upper-case extension", files: map[string]string{"d.JSONL": `{"text":"x"}`}, open: "d.JSONL", want: []string{"x"}},
		{name: "jsonl bad JSON", files: map[string]string{"d.jsonl": `{"text":"ok"}` + "\n" + `{"text": oops}`},
			open: "d.jsonl", want: []string{"ok"}, wantErr: "d.jsonl:2: bad JSON"},
		{name: "jsonl missing text", files: map[string]string{"d.jsonl": `{"body":"x"}`},
			open: "d.jsonl", wantErr: `d.jsonl:1: missing string field "text"`},
		{name: "jsonl text not a string", files: map[string]string{"d.jsonl": `{"text":3}`},
			open: "d.jsonl", wantErr: "d.jsonl:1: bad JSON"},
		{name: "oversize line", files: map[string]string{"a.txt": "ok\n" + long + "\n"}, open: "a.txt",
			lim: Limits{MaxDocBytes: 50}, want: []string{"ok"}, wantErr: "a.txt:2: line longer than max_doc_bytes 50", isLimit: true},
		{name: "line at the limit", files: map[string]string{"a.txt": long + "\r\n"}, open: "a.txt",
			lim: Limits{MaxDocBytes: 100}, want: []string{long}},
		{name: "line one over the limit", files: map[string]string{"a.txt": long + "\n"}, open: "a.txt",
			lim: Limits{MaxDocBytes: 99}, wantErr: "a.txt:1: document longer than max_doc_bytes 99", isLimit: true},
		{name: "jsonl oversize text", files: map[string]string{"d.jsonl": `{"text":"` + long + `"}`}, open: "d.jsonl",
			lim: Limits{MaxDocBytes: 50}, wantErr: "d.jsonl:1: document longer than max_doc_bytes 50", isLimit: true},
		{name: "max docs", files: map[string]string{"a.txt": "1\n2\n3\n"}, open: "a.txt",
			lim: Limits{MaxDocs: 2}, want: []string{"1", "2"}, wantErr: "a.txt:3: more than max_docs 2", isLimit: true},
		{name: "dir sorted recursive", files: map[string]string{
			"b.md": "B", "a/z.txt": "AZ", "a.txt": "A", "a/b/c.TXT": "ABC", "skip.json": "no", "empty.txt": "",
		}, want: []string{"A", "ABC", "AZ", "B", ""}},
		{name: "dir oversize file", files: map[string]string{"a.txt": "ok", "b.txt": long},
			lim: Limits{MaxDocBytes: 10}, want: []string{"ok"}, wantErr: "b.txt: 100 bytes, more than max_doc_bytes 10", isLimit: true},
		{name: "dir max docs", files: map[string]string{"a.txt": "1", "b.txt": "2"},
			lim: Limits{MaxDocs: 1}, wantErr: "more than max_docs 1 documents", isLimit: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			src, err := Open(filepath.Join(dir, tt.open), tt.lim)
			var got []string
			if err == nil {
				if got, want := src.Len(), int64(-1); got != want {
					t.Errorf("Len() = %d, want %d: files are not counted ahead", got, want)
				}
				got, err = readAll(t, src)
			}
			if tt.wantErr == "" && err != nil {
				t.Fatalf("error: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
			if got, want := errors.Is(err, ErrLimit), tt.isLimit; got != want {
				t.Errorf("errors.Is(err, ErrLimit) = %v, want %v", got, want)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Fatalf("docs = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOpenMissing(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "nope.txt"), Limits{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open(missing) = %v, want ErrNotExist", err)
	}
}

func TestErrorIsSticky(t *testing.T) {
	dir := writeFiles(t, map[string]string{"d.jsonl": "nope\n{\"text\":\"x\"}\n"})
	src, err := Open(filepath.Join(dir, "d.jsonl"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	_, err1 := src.Next()
	_, err2 := src.Next()
	if err1 == nil || err1 != err2 {
		t.Fatalf("Next errors %v then %v, want the same error twice", err1, err2)
	}
}

func TestSlice(t *testing.T) {
	tests := []struct {
		name  string
		texts []string
	}{
		{name: "empty", texts: nil},
		{name: "three", texts: []string{"a", "", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Slice(tt.texts)
			if got, want := s.Len(), int64(len(tt.texts)); got != want {
				t.Fatalf("Len() = %d, want %d", got, want)
			}
			got, err := readAll(t, s)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "|") != strings.Join(tt.texts, "|") || len(got) != len(tt.texts) {
				t.Fatalf("docs = %q, want %q", got, tt.texts)
			}
			if _, err := s.Next(); err != io.EOF {
				t.Fatalf("Next after the end = %v, want io.EOF", err)
			}
		})
	}
}

// A folder may hold things that are not documents: a named pipe would block
// the read forever and a symlink may lead out of the folder. Both are
// refused by name before anything is opened.
func TestDirRefusesNonRegularFiles(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, dir string) // adds the hostile entry
		want string
	}{
		{name: "fifo", make: func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "pipe.txt"), 0o644); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
		}, want: "pipe.txt: a named pipe"},
		{name: "symlink out of the folder", make: func(t *testing.T, dir string) {
			outside := filepath.Join(t.TempDir(), "secret.txt")
			if err := os.WriteFile(outside, []byte("secret"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(dir, "link.txt")); err != nil {
				t.Fatal(err)
			}
		}, want: "link.txt: a symbolic link"},
		{name: "symlink to a folder", make: func(t *testing.T, dir string) {
			if err := os.Symlink(t.TempDir(), filepath.Join(dir, "sub.md")); err != nil {
				t.Fatal(err)
			}
		}, want: "sub.md: a symbolic link"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"a.txt": "one"})
			tc.make(t, dir)
			done := make(chan error, 1)
			go func() { // a FIFO would block Open or Next forever on the old code
				s, err := Open(dir, Limits{})
				if err == nil {
					_, err = readAll(t, s)
				}
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want ErrNotRegular naming %q", err, tc.want)
				}
			case <-time.After(time.Minute):
				t.Fatal("reading the folder hangs")
			}
		})
	}
}

// max_docs stops the walk: a folder of a million files is not listed whole
// to learn that it holds more than 3.
func TestDirStopsAtMaxDocs(t *testing.T) {
	files := map[string]string{}
	for i := range 10 {
		files[fmt.Sprintf("d%d/%d.txt", i, i)] = "x"
	}
	dir := writeFiles(t, files)
	visited := 0
	_, err := openDirWalk(dir, Limits{MaxDocs: 3}.withDefaults(), func() { visited++ })
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "more than max_docs 3") {
		t.Fatalf("err = %v, want ErrLimit naming max_docs 3", err)
	}
	if visited > 4 {
		t.Errorf("walked %d documents, want to stop at the 4th", visited)
	}
}
