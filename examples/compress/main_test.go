package main

import (
	"testing"

	"github.com/ferrylab/ferry/examples/internal/exampletest"
	"github.com/klauspost/compress/zstd"
)

func TestUserCodeIsAtMost30Lines(t *testing.T) { exampletest.AtMost30Lines(t) }

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
	exampletest.RefusesParam(t, exampletest.Build(t), "zstd", "level=9", "param level=9: must be between 1 and 4")
}
