package coordinator

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/sink"
	"golang.org/x/sync/semaphore"
)

// BenchmarkStage/stage=collector_write times the collector's part of one
// embed batch (100 x 384 float32) in processes mode: complete, put in
// order, write to the sink, hash, and the Result back to the pool, from
// the decoded Result on. sink=discard is ferry run's default; sink=npy
// writes a .npy file.
//
//	go test -run x -bench BenchmarkStage -count 5 ./proto/ ./coordinator/
func BenchmarkStage(b *testing.B) {
	const docs, dim = 100, 384
	rng := rand.New(rand.NewPCG(1, 2))
	vecs := make([]float32, docs*dim)
	for i := range vecs {
		vecs[i] = rng.Float32()
	}
	for _, out := range []string{"discard", "npy"} {
		b.Run(fmt.Sprintf("stage=collector_write/sink=%s", out), func(b *testing.B) {
			var w sink.Writer = sink.Discard{}
			if out == "npy" {
				f, err := sink.Create(filepath.Join(b.TempDir(), "out.npy"))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { f.Close() })
				w = f
			}
			credit := semaphore.NewWeighted(1 << 40)
			c := newCollector(w, credit)
			ctx := context.Background()
			b.SetBytes(4 * docs * dim)
			b.ReportAllocs()
			var first int64
			for b.Loop() {
				t := &Task{Batch: proto.Batch{First: first, Docs: make([]string, docs)}}
				res := c.newResult()
				res.Out.Dim, res.Out.Vecs = dim, vecs // what decode leaves in it (read only here)
				if err := credit.Acquire(ctx, docs); err != nil {
					b.Fatal(err)
				}
				if c.complete(t, Result{Res: res, Timing: Timing{StageCompute: 1}}) {
					b.Fatal("a fresh batch counted as a duplicate")
				}
				first += docs
			}
			if c.err != nil {
				b.Fatal(c.err)
			}
		})
	}
}
