package corpus

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
)

// GenConfig configures Generated. The zero value of each field is its default.
type GenConfig struct {
	Seed     uint64  // 0 = 1; the whole corpus is a function of Seed
	Docs     int64   // documents in the corpus; 0 = 1000
	Words    int     // words per document; 0 = 100
	DocBytes int     // exact document length in bytes, overriding Words; 0 = use Words
	Vocab    int     // vocabulary size; 0 = 20000
	ZipfS    float64 // Zipf exponent of word frequencies (> 1); 0 = 1.07, close to English
}

// Generator is a deterministic synthetic corpus: pseudo-words drawn from a
// Zipf-distributed vocabulary, in sentences. Document i depends only on
// (Seed, i), so any process can regenerate any document (Doc) without the
// others. The vocabulary and its sampling table (~500 KB at the default size)
// are built once by Generated; each document then costs one allocation.
type Generator struct {
	cfg   GenConfig
	vocab []string
	cdf   []float64 // cdf[k] = P(rank <= k)
	guide []int32   // guide[j] = smallest k with cdf[k] >= j/len(guide): O(1) rank lookup
	next  int64
}

// Generated builds the corpus described by cfg.
func Generated(cfg GenConfig) (*Generator, error) {
	for _, c := range []struct {
		key string
		val int64
	}{{"docs", cfg.Docs}, {"words", int64(cfg.Words)}, {"doc_bytes", int64(cfg.DocBytes)}, {"vocab", int64(cfg.Vocab)}} {
		if c.val < 0 {
			return nil, fmt.Errorf("%w: %s %d must be >= 0", ErrInvalidConfig, c.key, c.val)
		}
	}
	if cfg.ZipfS != 0 && !(cfg.ZipfS > 1 && cfg.ZipfS < 10) {
		return nil, fmt.Errorf("%w: zipf_s %v must be in (1, 10)", ErrInvalidConfig, cfg.ZipfS)
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.Docs == 0 {
		cfg.Docs = 1000
	}
	if cfg.Words == 0 {
		cfg.Words = 100
	}
	if cfg.Vocab == 0 {
		cfg.Vocab = 20000
	}
	if cfg.ZipfS == 0 {
		cfg.ZipfS = 1.07
	}
	g := &Generator{cfg: cfg, vocab: makeVocab(cfg.Seed, cfg.Vocab), cdf: make([]float64, cfg.Vocab)}
	var sum float64
	for k := range g.cdf {
		sum += math.Pow(float64(k+1), -cfg.ZipfS)
		g.cdf[k] = sum
	}
	for k := range g.cdf {
		g.cdf[k] /= sum
	}
	g.guide = make([]int32, 4*cfg.Vocab)
	k := 0
	for j := range g.guide {
		for k < len(g.cdf)-1 && g.cdf[k] < float64(j)/float64(len(g.guide)) {
			k++
		}
		g.guide[j] = int32(k)
	}
	return g, nil
}

// makeVocab returns n pronounceable pseudo-words, shortest first, so that
// frequent (low-rank) words are short as in natural language.
func makeVocab(seed uint64, n int) []string {
	const cons, vows = "bcdfghjklmnprstvwz", "aeiou"
	r := rand.New(rand.NewPCG(seed, 0x766f636162)) // distinct stream from any document's
	words := make([]string, n)
	var b strings.Builder
	for i := range words {
		b.Reset()
		for range 1 + r.IntN(2) + r.IntN(3) { // 1..4 syllables, 2 most likely
			b.WriteByte(cons[r.IntN(len(cons))])
			b.WriteByte(vows[r.IntN(len(vows))])
			if r.IntN(4) == 0 {
				b.WriteByte(cons[r.IntN(len(cons))])
			}
		}
		words[i] = b.String()
	}
	sort.SliceStable(words, func(i, j int) bool { return len(words[i]) < len(words[j]) })
	return words
}

// Len is the number of documents.
func (g *Generator) Len() int64 { return g.cfg.Docs }

// Head returns a Generator over the first n documents of g's corpus (the
// same texts, from document 0), sharing g's vocabulary: building one costs
// about 100ms, taking a head nothing. It is safe to call concurrently.
func (g *Generator) Head(n int64) *Generator {
	h := &Generator{cfg: g.cfg, vocab: g.vocab, cdf: g.cdf, guide: g.guide}
	h.cfg.Docs = min(max(n, 0), g.cfg.Docs)
	return h
}

// Doc returns document i (0 <= i < Len). It is safe for concurrent use.
func (g *Generator) Doc(i int64) Doc {
	r := rand.New(rand.NewPCG(g.cfg.Seed, uint64(i)))
	var b strings.Builder
	if g.cfg.DocBytes > 0 {
		b.Grow(g.cfg.DocBytes + 16)
	} else {
		b.Grow(g.cfg.Words * 7)
	}
	sentence := 0 // words left in the current sentence
	for w := 0; ; w++ {
		if g.cfg.DocBytes > 0 && b.Len() >= g.cfg.DocBytes {
			break
		}
		if g.cfg.DocBytes == 0 && w == g.cfg.Words {
			break
		}
		word := g.vocab[g.rank(r.Float64())]
		if sentence == 0 {
			if w > 0 {
				b.WriteString(". ")
			}
			sentence = 5 + r.IntN(16)
			b.WriteByte(word[0] - ('a' - 'A')) // vocabulary is lowercase ASCII
			b.WriteString(word[1:])
		} else {
			if r.IntN(10) == 0 {
				b.WriteByte(',')
			}
			b.WriteByte(' ')
			b.WriteString(word)
		}
		sentence--
	}
	if g.cfg.DocBytes == 0 && g.cfg.Words > 0 {
		b.WriteByte('.')
	}
	s := b.String()
	if g.cfg.DocBytes > 0 {
		s = s[:g.cfg.DocBytes] // ASCII, so any cut is valid UTF-8
	}
	return Doc{Index: i, Text: s}
}

// rank maps a uniform u in [0,1) to a Zipf-distributed vocabulary rank.
func (g *Generator) rank(u float64) int {
	// The guide table starts the scan at most a few entries short of the
	// answer, so this is sort.SearchFloat64s's result in O(1) on average.
	k := int(g.guide[int(u*float64(len(g.guide)))])
	for k < len(g.cdf)-1 && g.cdf[k] < u {
		k++
	}
	return k
}

// Next returns the documents in order, then io.EOF.
func (g *Generator) Next() (Doc, error) {
	if g.next >= g.cfg.Docs {
		return Doc{}, io.EOF
	}
	d := g.Doc(g.next)
	g.next++
	return d, nil
}

// Close does nothing; a Generator holds no resources.
func (g *Generator) Close() error { return nil }
