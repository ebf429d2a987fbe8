package workload

import (
	"fmt"
	"math"
	"sync"
)

// infer runs a small transformer-block-shaped model on every document:
// embed's hashed features (scaled to unit-variance entries) through
// Dim -> 4·Dim -> Dim linear layers with a tanh-GELU between, then a layer
// norm. The random weights make it meaningless as a model but exact as a
// cost: 16·Dim² FLOPs per document, dense matrix multiply like real
// inference, and outputs that differ by document.
type infer struct {
	m *mlp
}

// inferRows is the documents multiplied together: enough to reuse each
// weight panel from cache, few enough that the scratch stays small
// (32×1536 float32 hidden activations = 192 KB at the default Dim).
const inferRows = 32

func newInfer(p Params) (Workload, error) {
	if p.Dim > MaxInferDim {
		return nil, fmt.Errorf("%w: dim %d must be <= %d for infer", ErrInvalidParams, p.Dim, MaxInferDim)
	}
	return &infer{m: model(p.Seed, p.Dim)}, nil
}

func (w *infer) Name() string { return "infer" }

// MemoryBytes is the weights: 8·Dim² float32, 4.7 MiB at Dim 384.
func (w *infer) MemoryBytes() int64 { return w.m.bytes() }

// ResultBytes is one row of Dim float32 per document.
func (w *infer) ResultBytes(docs []string) int64 { return 4 * int64(w.m.d) * int64(len(docs)) }

// FLOPs counts the multiply-adds of the two matrix products (2 FLOPs each);
// features, GELU and layer norm add about 1% at Dim 384 and are left out.
func (w *infer) FLOPs(docs int) float64 {
	return float64(docs) * 4 * float64(w.m.d) * float64(w.m.h)
}

type inferScratch struct {
	f      featurizer
	x, hid []float32
}

var inferScratches = sync.Pool{New: func() any { return new(inferScratch) }}

// Process appends one layer-normed row of Dim float32 per document.
func (w *infer) Process(docs []string, out *Output) error {
	m := w.m
	out.Dim = m.d
	s := inferScratches.Get().(*inferScratch)
	defer inferScratches.Put(s)
	if len(s.x) < inferRows*m.d {
		s.x, s.hid = make([]float32, inferRows*m.d), make([]float32, inferRows*m.h)
	}
	scale := float32(math.Sqrt(float64(m.d)))
	for len(docs) > 0 {
		n := min(len(docs), inferRows)
		x, hid := s.x[:n*m.d], s.hid[:n*m.h]
		clear(x)
		for i, d := range docs[:n] {
			row := x[i*m.d : (i+1)*m.d]
			s.f.embed(d, row)
			for j := range row {
				row[j] *= scale
			}
		}
		matmulT(hid, x, m.w1t, m.b1, n, m.d, m.h)
		for i, v := range hid {
			hid[i] = gelu(v)
		}
		var y []float32
		out.Vecs, y = appendZeros(out.Vecs, n*m.d)
		matmulT(y, hid, m.w2t, m.b2, n, m.h, m.d)
		for i := range n {
			layerNorm(y[i*m.d : (i+1)*m.d])
		}
		docs = docs[n:]
	}
	return nil
}

// gelu is the tanh approximation used by BERT and GPT-2.
func gelu(x float32) float32 {
	v := float64(x)
	return float32(0.5 * v * (1 + math.Tanh(0.7978845608028654*(v+0.044715*v*v*v))))
}

// layerNorm scales v to mean 0 and variance 1 (no learned gain or bias).
func layerNorm(v []float32) {
	var sum float64
	for _, x := range v {
		sum += float64(x)
	}
	mean := sum / float64(len(v))
	var ss float64
	for _, x := range v {
		d := float64(x) - mean
		ss += d * d
	}
	inv := 1 / math.Sqrt(ss/float64(len(v))+1e-5)
	for i, x := range v {
		v[i] = float32((float64(x) - mean) * inv)
	}
}
