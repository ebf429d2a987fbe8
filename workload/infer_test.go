package workload

import (
	"math"
	"testing"
)

func TestInferLayerNormed(t *testing.T) {
	for _, dim := range []int{8, 30, 384} {
		w := mustNew(t, "infer", Params{Dim: dim})
		out := process(t, w, testDocs)
		if got, want := len(out.Vecs), dim*len(testDocs); got != want || out.Dim != dim {
			t.Fatalf("dim %d: Dim %d len(Vecs) %d, want %d", dim, out.Dim, got, want)
		}
		for i := range testDocs {
			var sum, ss float64
			row := out.Vecs[i*dim : (i+1)*dim]
			for _, x := range row {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					t.Fatalf("dim %d doc %d: non-finite %v", dim, i, x)
				}
				sum += float64(x)
			}
			mean := sum / float64(dim)
			for _, x := range row {
				ss += (float64(x) - mean) * (float64(x) - mean)
			}
			// Token-less docs see only the biases; layer norm's epsilon then
			// shows in the variance.
			if v := ss / float64(dim); math.Abs(mean) > 1e-4 || math.Abs(v-1) > 1e-2 {
				t.Errorf("dim %d doc %d: mean %v variance %v, want 0 and 1", dim, i, mean, v)
			}
		}
	}
}

func TestInferSeed(t *testing.T) {
	docs := []string{"same text"}
	a := process(t, mustNew(t, "infer", Params{Seed: 1}), docs).Vecs
	b := process(t, mustNew(t, "infer", Params{Seed: 2}), docs).Vecs
	c := process(t, mustNew(t, "infer", Params{}), docs).Vecs // 0 = seed 1
	if a[0] == b[0] && a[1] == b[1] {
		t.Error("seeds 1 and 2 give the same output")
	}
	if a[0] != c[0] || a[1] != c[1] {
		t.Error("seed 0 is not seed 1")
	}
}

func TestInferDimLimit(t *testing.T) {
	if _, err := New("infer", Params{Dim: MaxInferDim + 1}); err == nil {
		t.Fatal("no error for an oversized infer dim")
	}
}

func TestInferFLOPs(t *testing.T) {
	w := mustNew(t, "infer", Params{}).(Flopper)
	if got, want := w.FLOPs(10), 10*2*2*384*1536.0; got != want {
		t.Fatalf("FLOPs(10) = %v, want %v", got, want)
	}
}

// matmulT against the textbook triple loop, with odd sizes that exercise
// every remainder path.
func TestMatmulT(t *testing.T) {
	tests := []struct {
		name       string
		rows, k, m int
	}{
		{name: "tiles", rows: 4, k: 8, m: 8},
		{name: "odd rows and cols", rows: 5, k: 7, m: 11},
		{name: "one row", rows: 1, k: 3, m: 2},
		{name: "panels", rows: 3, k: 300, m: 600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := splitmix64(9)
			rnd := func(n int) []float32 {
				v := make([]float32, n)
				for i := range v {
					v[i] = float32(r.uniform())
				}
				return v
			}
			a, bt, bias := rnd(tt.rows*tt.k), rnd(tt.m*tt.k), rnd(tt.m)
			c := make([]float32, tt.rows*tt.m)
			matmulT(c, a, bt, bias, tt.rows, tt.k, tt.m)
			for i := range tt.rows {
				for j := range tt.m {
					var s float32
					for p := range tt.k {
						s += a[i*tt.k+p] * bt[j*tt.k+p]
					}
					if want := s + bias[j]; c[i*tt.m+j] != want {
						t.Fatalf("c[%d][%d] = %v, want %v", i, j, c[i*tt.m+j], want)
					}
				}
			}
		})
	}
}
