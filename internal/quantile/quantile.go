// Package quantile is ferry's one definition of a quantile, over a slice
// or over a stream of any length in bounded memory. The coordinator's stage
// times, the transport floor, the LLM runner's call latencies and the
// sweep's spreads and bootstrap intervals all use it.
//
// The definition is nearest rank: the q-quantile of n values is the
// smallest of them that at least q·n of them do not exceed, the value at
// 1-based rank ceil(q·n) in ascending order (rank 1 for q <= 0, rank n for
// q >= 1). It is always one of the values, never an interpolation between
// two, so a p99 is a time some batch really took. The median of an even
// count is the lower of the middle two: of 1..10, p50 is 5 and p99 is 10.
//
// It is not a histogram or a metrics summary (metrics/ exports those to
// Prometheus), and it renders nothing.
package quantile

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
)

// Rank is the 0-based index of the q-quantile among n sorted values:
// ceil(q·n) − 1, clamped to [0, n−1]; 0 when n is 0. A product q·n that
// rounding lifts a hair above a whole number (0.07·100 is
// 7.000000000000001 in float64) counts as that whole number.
func Rank(n int, q float64) int {
	if n <= 0 || !(q > 0) { // !(q > 0) also catches NaN
		return 0
	}
	if q >= 1 {
		return n - 1
	}
	r := q * float64(n)
	k := int(math.Ceil(r - r*1e-12))
	return min(max(k-1, 0), n-1)
}

// Sorted returns the q-quantile of sorted, which must be in ascending
// order; the zero value when sorted is empty.
func Sorted[T cmp.Ordered](sorted []T, q float64) T {
	if len(sorted) == 0 {
		var zero T
		return zero
	}
	return sorted[Rank(len(sorted), q)]
}

// Number is what a Stream can add up and average.
type Number interface {
	~int | ~int64 | ~float64
}

// Capacity is how many values a Stream keeps: 65,536, half a megabyte of
// 8-byte values.
const Capacity = 1 << 16

// Stream summarises values added one at a time in bounded memory. Up to
// Capacity values it keeps them all, and its quantiles are exact. Past
// that it keeps a uniform random sample of Capacity of them (reservoir
// sampling, Vitter's algorithm R, with a fixed seed so a run is
// repeatable) and answers with the sample's quantile. That is off in rank,
// not in value: by the Dvoretzky–Kiefer–Wolfowitz inequality (which
// sampling without replacement only tightens), every answer lies between
// the stream's true (q−0.01)- and (q+0.01)-quantiles with probability above
// 1 − 4·10⁻⁶ (2·exp(−2·65536·0.01²)); the typical rank error is
// sqrt(q(1−q)/65536) of the stream, ±0.04% at p99 and ±0.2% at p50. N, Sum
// and Mean stay exact.
//
// The zero value is an empty Stream. A Stream is not safe for concurrent
// use. Add costs a few nanoseconds and allocates only while the kept
// values grow to Capacity (BenchmarkAdd).
type Stream[T Number] struct {
	v      []T // kept values: all of them up to Capacity, then the reservoir
	n      int64
	sum    T
	sorted bool // v is in ascending order
	rng    *rand.Rand
}

// Add adds x.
func (s *Stream[T]) Add(x T) {
	s.n++
	s.sum += x
	if len(s.v) < Capacity {
		if len(s.v) == cap(s.v) {
			// Grow by hand so the kept values never take more than Capacity.
			v := make([]T, len(s.v), min(max(64, 2*cap(s.v)), Capacity))
			copy(v, s.v)
			s.v = v
		}
		s.v = append(s.v, x)
		s.sorted = false
		return
	}
	if s.rng == nil {
		s.rng = rand.New(rand.NewPCG(1, 2))
	}
	// The order of the kept values does not matter to the sample, so a
	// sorted reservoir stays a fair one.
	if i := s.rng.Int64N(s.n); i < Capacity {
		s.v[i] = x
		s.sorted = false
	}
}

// N is how many values were added.
func (s *Stream[T]) N() int64 { return s.n }

// Sum is the sum of every value added.
func (s *Stream[T]) Sum() T { return s.sum }

// Mean is the mean of every value added (for integer types, truncated); 0
// when none was.
func (s *Stream[T]) Mean() T {
	if s.n == 0 {
		return 0
	}
	return s.sum / T(s.n)
}

// Exact reports whether every value added is kept, so that Quantile is
// exact rather than a sample's.
func (s *Stream[T]) Exact() bool { return s.n <= Capacity }

// Quantile returns the q-quantile of the values added (of the kept sample,
// once more than Capacity were added); 0 when none was. It sorts the kept
// values in place the first time after an Add.
func (s *Stream[T]) Quantile(q float64) T {
	if !s.sorted {
		slices.Sort(s.v)
		s.sorted = true
	}
	return Sorted(s.v, q)
}
