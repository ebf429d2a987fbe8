package main

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/ferrylab/ferry/examples/internal/exampletest"
)

func TestUserCodeIsAtMost30Lines(t *testing.T) { exampletest.AtMost30Lines(t) }

// TestRunFindsNearDuplicates runs the example binary on real text in every
// mode (identical results), then checks what the signatures are for: the
// share of agreeing entries estimates the shingles' Jaccard similarity.
func TestRunFindsNearDuplicates(t *testing.T) {
	bin := exampletest.Build(t)
	input, paras := exampletest.Paragraphs(t)
	data := exampletest.RunModes(t, bin, "--workload", "minhash", "--input", input, "--batch-size", "16")
	if len(data) != len(paras) {
		t.Fatalf("%d signatures for %d paragraphs", len(data), len(paras))
	}
	sigs := make([][]uint32, len(data))
	for i, b := range data {
		if len(b) != 4*128 {
			t.Fatalf("signature %d has %d bytes, want 512", i, len(b))
		}
		sigs[i] = make([]uint32, 128)
		for j := range sigs[i] {
			sigs[i][j] = binary.LittleEndian.Uint32(b[4*j:])
		}
	}
	var pairs, near int
	var errSum float64
	for i := range paras {
		for j := i + 1; j < len(paras); j++ {
			truth := jaccard(shingles(paras[i]), shingles(paras[j]))
			if truth < 0.3 {
				continue
			}
			agree := 0
			for k := range sigs[i] {
				if sigs[i][k] == sigs[j][k] {
					agree++
				}
			}
			pairs++
			errSum += math.Abs(float64(agree)/128 - truth)
			if agree >= 100 {
				near++
			}
		}
	}
	if pairs < 50 || near < 40 {
		t.Errorf("%d similar pairs, %d near-duplicates: the license texts share more", pairs, near)
	}
	if mean := errSum / float64(pairs); mean > 0.05 {
		t.Errorf("mean error of the Jaccard estimate %.3f, want at most 0.05 (128 hashes)", mean)
	}
}

func TestParamsAreChecked(t *testing.T) {
	exampletest.RefusesParam(t, exampletest.Build(t), "minhash", "shingle=0", "param shingle=0: must be between 1 and 16")
}

func shingles(s string) map[string]bool {
	w := strings.Fields(strings.ToLower(s))
	set := map[string]bool{}
	for i := 0; i == 0 || i+3 <= len(w); i++ {
		set[strings.Join(w[i:min(i+3, len(w))], " ")] = true
	}
	return set
}

func jaccard(a, b map[string]bool) float64 {
	inter := 0
	for k := range a {
		if b[k] {
			inter++
		}
	}
	return float64(inter) / float64(len(a)+len(b)-inter)
}
