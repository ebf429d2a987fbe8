package command

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrylab/ferry/internal/natstest"
)

// TestOutNeverDestroysData: --out naming the input (by path, symlink or
// hard link) is refused before anything is written, and a run that fails
// leaves an earlier output untouched, with its partial result beside it.
func TestOutNeverDestroysData(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "d.jsonl")
	const docs = `{"text":"one two"}` + "\n" + `{"text":"three four"}` + "\n"
	if err := os.WriteFile(input, []byte(docs), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.jsonl")
	hard := filepath.Join(dir, "hard.jsonl")
	if err := os.Symlink(input, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(input, hard); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{input, link, hard} {
		t.Run(filepath.Base(out), func(t *testing.T) {
			_, stderr, code := ferry(t, nil, "run", "-q", "--modes", "serial", "--input", input, "--out", out)
			if code != 2 || !strings.Contains(stderr, "out=") {
				t.Errorf("exit %d, stderr %q; want 2 naming out", code, stderr)
			}
			if b, _ := os.ReadFile(input); string(b) != docs {
				t.Errorf("input is now %q", b)
			}
		})
	}

	t.Run("failed run keeps the earlier output", func(t *testing.T) {
		good := filepath.Join(dir, "good.npy")
		if _, stderr, code := ferry(t, nil, "run", "-q", "--modes", "serial", "--docs", "50", "--out", good); code != 0 {
			t.Fatalf("first run: exit %d: %s", code, stderr)
		}
		before, _ := os.ReadFile(good)
		// No worker can attach in time: the processes run fails.
		_, natsURL := natstest.NewServer(t)
		_, _, code := ferry(t, nil, "coordinator", "-q", "--nats-url", natsURL,
			"--worker-wait", "1s", "--docs", "50", "--out", good)
		if code == 0 {
			t.Fatal("coordinator without workers succeeded")
		}
		if after, _ := os.ReadFile(good); string(after) != string(before) {
			t.Errorf("good.npy changed from %d to %d bytes after a failed run", len(before), len(after))
		}
		if _, err := os.Stat(good + ".partial"); err != nil {
			t.Errorf("no partial output beside it: %v", err)
		}
	})
}
