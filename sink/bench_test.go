package sink

import (
	"os"
	"testing"

	"github.com/ferrylab/ferry/workload"
)

// BenchmarkNPYWrite writes one embed batch (100 rows of 384 float32, one
// failed) to /dev/null: the sink's own CPU, without the disk's.
//
//	go test -run x -bench BenchmarkNPYWrite -count 5 ./sink/
func BenchmarkNPYWrite(b *testing.B) {
	const docs, dim = 100, 384
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Skip(err)
	}
	n, err := newNPY(f)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close() })
	o := &workload.Output{Dim: dim, Vecs: make([]float32, docs*dim)}
	failed := make([]bool, docs)
	failed[50] = true
	b.SetBytes(4 * docs * dim)
	b.ReportAllocs()
	for b.Loop() {
		if err := n.Write(0, o, failed); err != nil {
			b.Fatal(err)
		}
	}
}
