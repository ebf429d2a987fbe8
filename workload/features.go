package workload

import (
	"math"
	"slices"
	"sync"
	"unicode/utf8"
)

// Feature hashing: every feature is hashed (FNV-1a 64, then a murmur3
// finaliser so low bits are usable) to one dimension and a sign taken from
// the top bit; collisions then cancel in expectation instead of piling up.
// Features of a document: each lowercase token, each pair of neighbouring
// tokens, and each character 3-gram of "^token$". All weigh 1.

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211

	// Distinct FNV starting states keep a word, a bigram and a 3-gram with
	// the same bytes on different dimensions.
	seedWord   = fnvOffset
	seedGram   = fnvOffset ^ 0x9e3779b97f4a7c15
	seedBigram = 0xc2b2ae3d27d4eb4f
)

func fnv1a(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// addHashed adds ±1 at the dimension chosen by h. Counts stay small
// integers, which float32 holds exactly, so the sum is order independent.
func addHashed(vec []float32, h uint64) {
	h = fmix64(h)
	i := (h & 0xffffffff) * uint64(len(vec)) >> 32 // unbiased enough, no division
	if h>>63 != 0 {
		vec[i]--
	} else {
		vec[i]++
	}
}

// featurizer holds the scratch buffers for one goroutine; get one from
// featurizers so a batch allocates nothing per token or per document.
type featurizer struct {
	buf []byte  // "^" + lowercase token + "$"
	pos []int32 // rune start offsets in buf, then len(buf)
}

var featurizers = sync.Pool{New: func() any { return new(featurizer) }}

// embed writes the L2-normalised hashed features of doc into vec, which
// must be zero. A document without tokens stays the zero vector.
func (f *featurizer) embed(doc string, vec []float32) {
	var prev uint64
	first := true
	for s, e := nextToken(doc, 0); s < e; s, e = nextToken(doc, e) {
		f.buf = append(f.buf[:0], '^')
		var ascii bool
		f.buf, ascii = appendLower(f.buf, doc[s:e])
		f.buf = append(f.buf, '$')

		w := fnv1a(seedWord, f.buf[1:len(f.buf)-1])
		addHashed(vec, w)
		if !first {
			addHashed(vec, fmix64(prev^seedBigram)^w)
		}
		prev, first = w, false
		f.addGrams(vec, ascii)
	}
	normalize(vec)
}

// addGrams adds the character 3-grams of f.buf.
func (f *featurizer) addGrams(vec []float32, ascii bool) {
	b := f.buf
	if ascii {
		for i := 0; i+3 <= len(b); i++ {
			addHashed(vec, gramHash(b[i:i+3]))
		}
		return
	}
	f.pos = f.pos[:0]
	for i := 0; i < len(b); {
		f.pos = append(f.pos, int32(i))
		_, n := utf8.DecodeRune(b[i:])
		i += n
	}
	f.pos = append(f.pos, int32(len(b)))
	for i := 0; i+3 < len(f.pos); i++ {
		addHashed(vec, gramHash(b[f.pos[i]:f.pos[i+3]]))
	}
}

// gramHash packs a gram of up to 7 bytes (every ASCII gram, most others)
// into the key directly, tagged with its length; addHashed's finaliser does
// the mixing, so the common case skips the byte loop. Longer grams use FNV.
func gramHash(g []byte) uint64 {
	if len(g) > 7 {
		return fnv1a(seedGram, g)
	}
	h := uint64(len(g)) << 56
	for i, c := range g {
		h |= uint64(c) << (8 * i)
	}
	return h ^ seedGram
}

// normalize scales v to unit L2 norm; a zero vector stays zero.
func normalize(v []float32) {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 {
		return
	}
	inv := 1 / math.Sqrt(ss)
	for i, x := range v {
		v[i] = float32(float64(x) * inv)
	}
}

// appendZeros extends s by n zeros and returns the new slice and its tail.
func appendZeros(s []float32, n int) ([]float32, []float32) {
	l := len(s)
	s = slices.Grow(s, n)[:l+n]
	tail := s[l:]
	clear(tail)
	return s, tail
}
