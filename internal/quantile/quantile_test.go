package quantile

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestSorted(t *testing.T) {
	ten := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name string
		v    []int
		q    float64
		want int
	}{
		{name: "empty", q: 0.5, want: 0},
		{name: "one", v: []int{7}, q: 0.99, want: 7},
		{name: "q=0 is the min", v: []int{1, 2, 3}, q: 0, want: 1},
		{name: "q<0 is the min", v: []int{1, 2, 3}, q: -1, want: 1},
		{name: "NaN is the min", v: []int{1, 2, 3}, q: math.NaN(), want: 1},
		{name: "q=1 is the max", v: []int{1, 2, 3}, q: 1, want: 3},
		{name: "q>1 is the max", v: []int{1, 2, 3}, q: 2, want: 3},
		{name: "odd median", v: []int{1, 2, 3, 4, 5}, q: 0.5, want: 3},
		{name: "odd q1", v: []int{1, 2, 3, 4, 5}, q: 0.25, want: 2},
		{name: "odd q3", v: []int{1, 2, 3, 4, 5}, q: 0.75, want: 4},
		{name: "even median is the lower middle", v: []int{1, 2, 3, 4}, q: 0.5, want: 2},
		{name: "just past half", v: []int{1, 2, 3, 4}, q: 0.51, want: 3},
		{name: "p99 of 100", v: hundred, q: 0.99, want: 99},
		{name: "p95 of 100", v: hundred, q: 0.95, want: 95},
		{name: "p5 of 100", v: hundred, q: 0.05, want: 5},
		// 0.07*100 is 7.000000000000001 in float64: still rank 7.
		{name: "rounding above a whole rank", v: hundred, q: 0.07, want: 7},
		{name: "p28 of 25", v: hundred[:25], q: 0.28, want: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Sorted(tt.v, tt.q); got != tt.want {
				t.Errorf("Sorted(%v, %v) = %v, want %v", tt.v, tt.q, got, tt.want)
			}
		})
	}
	// The figures lab/llm's tests expected of its own percentile.
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5}, {0.99, 10}} {
		if got := Sorted(ten, c.q); got != c.want {
			t.Errorf("Sorted(1..10, %v) = %v, want %v", c.q, got, c.want)
		}
	}
}

// TestRankIsNearestRank checks Rank against the definition in whole
// numbers: the smallest 1-based rank k with k*100 >= p*n.
func TestRankIsNearestRank(t *testing.T) {
	for n := 1; n <= 2000; n++ {
		for p := 1; p < 100; p++ {
			want := (p*n+99)/100 - 1
			if got := Rank(n, float64(p)/100); got != want {
				t.Fatalf("Rank(%d, %v) = %d, want %d", n, float64(p)/100, got, want)
			}
		}
	}
}

func TestStreamExactUpToCapacity(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var s Stream[time.Duration]
	var all []time.Duration
	var sum time.Duration
	for i := range Capacity {
		d := time.Duration(rng.Int64N(int64(time.Second)))
		s.Add(d)
		all, sum = append(all, d), sum+d
		if i == 999 { // a query midway must not disturb later adds
			if got, want := s.Quantile(0.5), sortedCopy(all)[499]; got != want {
				t.Errorf("p50 of 1000 = %v, want %v", got, want)
			}
		}
	}
	if !s.Exact() {
		t.Error("Exact() = false at Capacity values")
	}
	sorted := sortedCopy(all)
	for _, q := range []float64{0, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1} {
		if got, want := s.Quantile(q), Sorted(sorted, q); got != want {
			t.Errorf("Quantile(%v) = %v, want %v", q, got, want)
		}
	}
	if got, want := s.N(), int64(Capacity); got != want {
		t.Errorf("N = %d, want %d", got, want)
	}
	if got, want := s.Mean(), sum/Capacity; got != want {
		t.Errorf("Mean = %v, want %v", got, want)
	}
}

func TestStreamEmpty(t *testing.T) {
	var s Stream[float64]
	if s.Quantile(0.5) != 0 || s.Mean() != 0 || s.N() != 0 || s.Sum() != 0 || !s.Exact() {
		t.Errorf("empty stream: p50 %v, mean %v, n %d, sum %v, exact %v", s.Quantile(0.5), s.Mean(), s.N(), s.Sum(), s.Exact())
	}
}

// TestStreamLarge streams a shuffled 0..n-1 (so the true q-quantile is
// Rank(n, q)) far past Capacity and checks every answer lies within the
// documented rank error of 1% of n, and that memory stayed at Capacity.
func TestStreamLarge(t *testing.T) {
	const n = 1_000_000
	perm := rand.New(rand.NewPCG(5, 6)).Perm(n)
	var s Stream[float64]
	for _, x := range perm {
		s.Add(float64(x))
	}
	if s.Exact() {
		t.Error("Exact() = true past Capacity")
	}
	if got, want := cap(s.v), Capacity; got != want {
		t.Errorf("kept %d values' room after %d adds, want %d", got, n, want)
	}
	if got, want := s.Mean(), float64(n-1)/2; got != want {
		t.Errorf("Mean = %v, want %v (exact, not the sample's)", got, want)
	}
	for _, q := range []float64{0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999} {
		got, want := s.Quantile(q), float64(Rank(n, q))
		if rankErr := math.Abs(got-want) / n; rankErr > 0.01 {
			t.Errorf("Quantile(%v) = %v, want %v within 1%% of %d in rank: off by %.3f%%", q, got, want, n, 100*rankErr)
		}
	}
}

// TestStreamAddAllocatesNothingWhenFull: past Capacity, memory is flat.
func TestStreamAddAllocatesNothingWhenFull(t *testing.T) {
	var s Stream[time.Duration]
	for i := range Capacity + 1 {
		s.Add(time.Duration(i))
	}
	if allocs := testing.AllocsPerRun(10_000, func() { s.Add(time.Millisecond) }); allocs != 0 {
		t.Errorf("Add on a full stream: %v allocations, want 0", allocs)
	}
	if got := cap(s.v); got != Capacity {
		t.Errorf("cap = %d, want %d", got, Capacity)
	}
}

func sortedCopy[T Number](v []T) []T {
	c := slices.Clone(v)
	slices.Sort(c)
	return c
}

// BenchmarkAdd is the cost of Stream.Add while it keeps every value and
// once it samples, against the baseline of a bare append to a slice of
// Capacity reused.
func BenchmarkAdd(b *testing.B) {
	b.Run("path=append", func(b *testing.B) {
		b.ReportAllocs()
		v := make([]time.Duration, 0, Capacity)
		for i := range b.N {
			if len(v) == Capacity {
				v = v[:0]
			}
			v = append(v, time.Duration(i))
		}
	})
	b.Run("path=exact", func(b *testing.B) {
		b.ReportAllocs()
		var s Stream[time.Duration]
		for i := range b.N {
			if i%Capacity == 0 {
				s = Stream[time.Duration]{}
			}
			s.Add(time.Duration(i))
		}
	})
	b.Run("path=reservoir", func(b *testing.B) {
		var s Stream[time.Duration]
		for i := range Capacity {
			s.Add(time.Duration(i))
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			s.Add(time.Duration(i))
		}
	})
}
