package workload

import (
	"math"
	"testing"
)

func TestEmbedUnitNorm(t *testing.T) {
	for _, dim := range []int{8, 384, 1000} {
		w := mustNew(t, "embed", Params{Dim: dim})
		out := process(t, w, testDocs)
		if got, want := len(out.Vecs), dim*len(testDocs); got != want {
			t.Fatalf("dim %d: len(Vecs) = %d, want %d", dim, got, want)
		}
		for i, d := range testDocs {
			var ss float64
			for _, x := range out.Vecs[i*dim : (i+1)*dim] {
				ss += float64(x) * float64(x)
			}
			want := 1.0
			if !hasToken(d) {
				want = 0
			}
			if math.Abs(ss-want) > 1e-5 {
				t.Errorf("dim %d doc %d %q: squared norm %v, want %v", dim, i, d, ss, want)
			}
		}
	}
}

func hasToken(d string) bool {
	s, e := nextToken(d, 0)
	return s < e
}

func TestEmbedFeatures(t *testing.T) {
	w := mustNew(t, "embed", Params{})
	vec := func(d string) []float32 { return process(t, w, []string{d}).Vecs }
	cos := func(a, b []float32) float64 {
		var s float64
		for i := range a {
			s += float64(a[i]) * float64(b[i])
		}
		return s
	}
	tests := []struct {
		name     string
		a, b     string
		min, max float64
	}{
		{name: "case and punctuation ignored", a: "Hello, World!", b: "hello world", min: 0.9999, max: 1.0001},
		{name: "unicode case folded", a: "STRASSE ÜBER", b: "strasse über", min: 0.9999, max: 1.0001},
		{name: "word order matters via bigrams", a: "dog bites man", b: "man bites dog", min: 0.5, max: 0.99},
		{name: "unrelated texts near orthogonal", a: "quantum chromodynamics lattice", b: "banana bread recipe", min: -0.3, max: 0.3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c := cos(vec(tt.a), vec(tt.b)); c < tt.min || c > tt.max {
				t.Fatalf("cos = %v, want in [%v, %v]", c, tt.min, tt.max)
			}
		})
	}
}

func TestTokenizer(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{name: "empty", in: "", want: nil},
		{name: "separators", in: " .,- ", want: nil},
		{name: "ascii", in: "Hello, world 42x!", want: []string{"Hello", "world", "42x"}},
		{name: "marks stay in words", in: "नमस्ते दुनिया", want: []string{"नमस्ते", "दुनिया"}},
		{name: "emoji separates", in: "a🙂b", want: []string{"a", "b"}},
		{name: "invalid utf8 separates", in: "a\xffb", want: []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for s, e := nextToken(tt.in, 0); s < e; s, e = nextToken(tt.in, e) {
				got = append(got, tt.in[s:e])
			}
			if len(got) != len(tt.want) {
				t.Fatalf("tokens %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("tokens %q, want %q", got, tt.want)
				}
			}
		})
	}
}
