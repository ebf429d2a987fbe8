package main

import (
	"strings"
	"testing"

	"github.com/ferrylab/ferry/examples/internal/exampletest"
	"github.com/klauspost/compress/zstd"
)

func TestUserCodeIsAtMost30Lines(t *testing.T) {
	if n := exampletest.CodeLines(t); n > 30 {
		t.Errorf("main.go has %d lines of code, want at most 30", n)
	}
}

// TestRunCompressesEveryDocument runs the example binary on real text in
// every mode (identical results) and decompresses each document back.
func TestRunCompressesEveryDocument(t *testing.T) {
	bin := exampletest.Build(t)
	input, paras := exampletest.Paragraphs(t)
	for _, level := range []string{"1", "4"} {
		t.Run("level="+level, func(t *testing.T) {
			data := exampletest.RunModes(t, bin, "--workload", "zstd", "--param", "level="+level, "--input", input, "--batch-size", "16")
			if len(data) != len(paras) {
				t.Fatalf("%d results for %d paragraphs", len(data), len(paras))
			}
			dec, err := zstd.NewReader(nil)
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()
			var in, out int
			for i, b := range data {
				got, err := dec.DecodeAll(b, nil)
				if err != nil || string(got) != paras[i] {
					t.Fatalf("document %d does not decompress to its text: %v", i, err)
				}
				in, out = in+len(paras[i]), out+len(b)
			}
			t.Logf("level %s: %d bytes of text in %d compressed bytes (%.2f), one frame per document", level, in, out, float64(out)/float64(in))
		})
	}
}

func TestParamsAreChecked(t *testing.T) {
	bin := exampletest.Build(t)
	_, stderr, code := exampletest.Run(t, bin, "run", "--workload", "zstd", "--docs", "10", "--param", "level=9")
	if code != 2 || !strings.Contains(stderr, "param level=9: must be between 1 and 4") {
		t.Fatalf("exit %d, %q: want 2 naming the param and its bounds", code, stderr)
	}
}
