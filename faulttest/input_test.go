package faulttest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInputFolderFIFOAndSymlink: an --input folder holding a named pipe or
// a symbolic link (here to a file outside the folder) with a document's
// name. `ferry run` must end within a bound, refusing the entry by name,
// never blocking on the pipe or reading the link's target.
func TestInputFolderFIFOAndSymlink(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(outside, []byte("not for the job\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, entry, want string
		make              func(path string) error
	}{
		{"fifo", "b.txt", "a named pipe", func(p string) error { return syscall.Mkfifo(p, 0o644) }},
		{"symlink", "c.md", "a symbolic link", func(p string) error { return os.Symlink(outside, p) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{"a.txt", "d.txt"} {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("a document\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := tc.make(filepath.Join(dir, tc.entry)); err != nil {
				t.Skipf("make %s: %v", tc.name, err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, ferryBin, "run", "-q", "--modes", "serial", "--workload", "spin", "--input", dir)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			start := time.Now()
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("ferry run on a folder with a %s still runs after 2 minutes", tc.name)
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("err = %v, want a non-zero exit; stderr:\n%s", err, stderr.String())
			}
			line := lastLine(stderr.String())
			if !strings.Contains(line, tc.entry) || !strings.Contains(line, tc.want) {
				t.Errorf("last line %q: want it to name %s as %s", line, tc.entry, tc.want)
			}
			t.Logf("input-%s: exit %d after %s: %s", tc.name, exit.ExitCode(), time.Since(start).Round(time.Millisecond), line)
		})
	}
}
