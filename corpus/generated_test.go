package corpus

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestGenerated(t *testing.T) {
	tests := []struct {
		name  string
		cfg   GenConfig
		check func(t *testing.T, d Doc)
	}{
		{name: "words", cfg: GenConfig{Docs: 20, Words: 37}, check: func(t *testing.T, d Doc) {
			if got := len(strings.Fields(d.Text)); got != 37 {
				t.Fatalf("doc %d has %d words, want 37: %q", d.Index, got, d.Text)
			}
		}},
		{name: "doc bytes", cfg: GenConfig{Docs: 20, DocBytes: 1000, Words: 3}, check: func(t *testing.T, d Doc) {
			if got := len(d.Text); got != 1000 {
				t.Fatalf("doc %d has %d bytes, want 1000", d.Index, got)
			}
		}},
		{name: "tiny doc bytes", cfg: GenConfig{Docs: 5, DocBytes: 1}, check: func(t *testing.T, d Doc) {
			if got := len(d.Text); got != 1 {
				t.Fatalf("doc %d has %d bytes, want 1", d.Index, got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := Generated(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			n := int64(0)
			for d, err := range All(g) {
				if err != nil {
					t.Fatal(err)
				}
				tt.check(t, d)
				n++
			}
			if n != tt.cfg.Docs {
				t.Fatalf("%d docs, want %d", n, tt.cfg.Docs)
			}
			if _, err := g.Next(); err != io.EOF {
				t.Fatalf("Next after the end = %v, want io.EOF", err)
			}
		})
	}
}

// A document depends only on (seed, index): sequential and random access
// agree, two generators agree, and another seed differs.
func TestGeneratedDeterministic(t *testing.T) {
	a, _ := Generated(GenConfig{Seed: 7, Docs: 50})
	b, _ := Generated(GenConfig{Seed: 7, Docs: 50})
	c, _ := Generated(GenConfig{Seed: 8, Docs: 50})
	seen := map[string]bool{}
	for i := int64(0); i < 50; i++ {
		d, err := a.Next()
		if err != nil {
			t.Fatal(err)
		}
		if got := b.Doc(49 - i); got.Text != a.Doc(49-i).Text {
			t.Fatalf("doc %d differs between generators", got.Index)
		}
		if d.Text != b.Doc(i).Text {
			t.Fatalf("doc %d: Next and Doc differ", i)
		}
		if d.Text == c.Doc(i).Text {
			t.Fatalf("doc %d same under seeds 7 and 8", i)
		}
		seen[d.Text] = true
	}
	if len(seen) != 50 {
		t.Fatalf("%d distinct docs of 50", len(seen))
	}
}

// Zipf: the commonest word should dominate; the vocabulary should be wide.
func TestGeneratedZipf(t *testing.T) {
	g, _ := Generated(GenConfig{Docs: 200, Words: 100})
	counts := map[string]int{}
	total := 0
	for d, _ := range All(g) {
		for _, w := range strings.Fields(strings.ToLower(d.Text)) {
			counts[strings.Trim(w, ".,")]++
			total++
		}
	}
	top := 0
	for _, c := range counts {
		top = max(top, c)
	}
	if share := float64(top) / float64(total); share < 0.05 || share > 0.2 {
		t.Errorf("top word share %.3f, want Zipf-like 0.05..0.2", share)
	}
	if len(counts) < 2000 {
		t.Errorf("%d distinct words in %d, want a wide vocabulary", len(counts), total)
	}
}

func TestGeneratedInvalid(t *testing.T) {
	for _, cfg := range []GenConfig{{Docs: -1}, {Words: -2}, {DocBytes: -3}, {ZipfS: 0.5}} {
		if _, err := Generated(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Generated(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
}

func BenchmarkGenerated(b *testing.B) {
	g, _ := Generated(GenConfig{Docs: 1 << 40, Words: 100})
	b.ReportAllocs()
	var n int64
	for i := 0; b.Loop(); i++ {
		n += int64(len(g.Doc(int64(i)).Text))
	}
	b.SetBytes(n / int64(b.N))
}

// A head is the first n documents of its corpus, whatever g has read.
func TestGeneratedHead(t *testing.T) {
	g, err := Generated(GenConfig{Seed: 3, Docs: 10, Words: 5})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Next(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		n    int64
		want int64
	}{
		{name: "shorter", n: 4, want: 4},
		{name: "all", n: 10, want: 10},
		{name: "longer than the corpus", n: 20, want: 10},
		{name: "none", n: 0, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := g.Head(tt.n)
			if got := h.Len(); got != tt.want {
				t.Fatalf("Len() = %d, want %d", got, tt.want)
			}
			var n int64
			for d, err := range All(h) {
				if err != nil {
					t.Fatal(err)
				}
				if got, want := d, g.Doc(n); got != want {
					t.Fatalf("doc %d = %q, want %q", n, got.Text, want.Text)
				}
				n++
			}
			if n != tt.want {
				t.Fatalf("%d docs, want %d", n, tt.want)
			}
		})
	}
}
