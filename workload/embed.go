package workload

// embed turns each document into one hashed-feature vector (see features.go):
// a stand-in for a sentence embedder with the same output shape and a cost
// that grows with the text, not a semantic model.
type embed struct {
	dim int
}

func newEmbed(p Params) (Workload, error) {
	return &embed{dim: p.Dim}, nil
}

func (e *embed) Name() string { return "embed" }

// ResultBytes is one row of Dim float32 per document.
func (e *embed) ResultBytes(docs []string) int64 { return 4 * int64(e.dim) * int64(len(docs)) }

// Process appends one unit-norm row of Dim float32 per document.
func (e *embed) Process(docs []string, out *Output) error {
	out.Dim = e.dim
	f := featurizers.Get().(*featurizer)
	defer featurizers.Put(f)
	for _, d := range docs {
		var row []float32
		out.Vecs, row = appendZeros(out.Vecs, e.dim)
		f.embed(d, row)
	}
	return nil
}
