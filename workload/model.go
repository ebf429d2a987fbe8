package workload

import (
	"math"
	"runtime"
	"sync"
	"weak"
)

// mlp holds infer's weights, stored transposed (output-major) for matmulT.
type mlp struct {
	d, h    int
	w1t, b1 []float32 // h×d, h
	w2t, b2 []float32 // d×h, d
}

type modelKey struct {
	seed uint64
	dim  int
}

// models shares weights per (seed, dim) between the workloads that use
// them (the lanes of goroutines mode, each with its own Cache, get one copy;
// building them costs ~10 ms at the default size). It holds them weakly:
// weights live only while a workload (kept by a bounded Cache, or computing)
// holds them, so this table never keeps memory of its own.
var models struct {
	sync.Mutex
	m map[modelKey]weak.Pointer[mlp]
}

func model(seed uint64, dim int) *mlp {
	models.Lock()
	defer models.Unlock()
	k := modelKey{seed, dim}
	if m := models.m[k].Value(); m != nil {
		return m
	}
	if models.m == nil {
		models.m = make(map[modelKey]weak.Pointer[mlp])
	}
	m := newMLP(seed, dim)
	wp := weak.Make(m)
	models.m[k] = wp
	runtime.AddCleanup(m, func(k modelKey) {
		models.Lock()
		defer models.Unlock()
		if models.m[k] == wp { // not replaced by a newer build
			delete(models.m, k)
		}
	}, k)
	return m
}

// bytes is the memory of the weights.
func (m *mlp) bytes() int64 {
	return 4 * int64(len(m.w1t)+len(m.b1)+len(m.w2t)+len(m.b2))
}

// newMLP draws the weights from splitmix64(seed): uniform with variance
// 1/fan_in (the usual init, keeping activations O(1)), small biases.
func newMLP(seed uint64, d int) *mlp {
	h := 4 * d
	r := new(splitmix64)
	*r = splitmix64(seed)
	fill := func(n int, scale float64) []float32 {
		w := make([]float32, n)
		for i := range w {
			w[i] = float32(r.uniform() * scale)
		}
		return w
	}
	m := &mlp{d: d, h: h}
	m.w1t = fill(h*d, math.Sqrt(3/float64(d)))
	m.b1 = fill(h, 0.1)
	m.w2t = fill(d*h, math.Sqrt(3/float64(h)))
	m.b2 = fill(d, 0.1)
	return m
}

// splitmix64 is a tiny PRNG with a fixed, documented output sequence, so the
// weights never change with a Go release (math/rand/v2 promises less).
type splitmix64 uint64

func (s *splitmix64) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// uniform returns a float64 uniform in [-1, 1) with 53 random bits.
func (s *splitmix64) uniform() float64 {
	return float64(int64(s.next()>>11)-(1<<52)) / (1 << 52)
}
