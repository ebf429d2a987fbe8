package workload_test

import (
	"fmt"
	"testing"

	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/workload"
)

// BenchmarkWorkload runs each workload serially over batches of generated
// 100-word documents. MB/s counts document text; docs/s is per second of
// one core; infer adds GFLOP/s. Compare within one run: machines are noisy.
//
//	go test -run '^$' -bench BenchmarkWorkload -count 6 ./workload | benchstat -
func BenchmarkWorkload(b *testing.B) {
	g, err := corpus.Generated(corpus.GenConfig{Docs: 1000, Words: 100})
	if err != nil {
		b.Fatal(err)
	}
	docs := make([]string, g.Len())
	var textBytes int64
	for i := range docs {
		docs[i] = g.Doc(int64(i)).Text
		textBytes += int64(len(docs[i]))
	}
	for _, name := range workload.Names() {
		for _, batch := range []int{1, 100} {
			b.Run(fmt.Sprintf("name=%s/batch=%d", name, batch), func(b *testing.B) {
				w, err := workload.New(name, workload.Params{})
				if err != nil {
					b.Fatal(err)
				}
				var out workload.Output
				b.SetBytes(textBytes * int64(batch) / int64(len(docs))) // batches cycle over all docs
				b.ReportAllocs()
				off := 0
				for b.Loop() {
					if off+batch > len(docs) {
						off = 0
					}
					out.Reset()
					if err := w.Process(docs[off:off+batch], &out); err != nil {
						b.Fatal(err)
					}
					off += batch
				}
				sec := b.Elapsed().Seconds()
				b.ReportMetric(float64(b.N*batch)/sec, "docs/s")
				if f, ok := w.(workload.Flopper); ok {
					b.ReportMetric(f.FLOPs(b.N*batch)/sec/1e9, "GFLOP/s")
				}
			})
		}
	}
}
