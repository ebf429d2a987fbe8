package proto

import (
	"testing"
)

// BenchmarkStage times each codec stage of one embed batch (100 documents
// of 600 bytes, a 100 x 384 float32 result) as processes mode runs it, with
// the buffers reused as the link and the worker reuse them, so allocs/op is
// what each batch costs the garbage collector. Compute is left out: it is
// the workload's, paid in goroutines mode too.
//
//	go test -run x -bench BenchmarkStage -count 5 ./proto/ ./coordinator/
func BenchmarkStage(b *testing.B) {
	c, err := NewCodec(CodecPacked, Limits{})
	if err != nil {
		b.Fatal(err)
	}
	batch := batchOf(docsOf(100, 600))
	res := embedResult(100, 384)
	batchBytes := encodeShape(b, c, batch, nil)
	resBytes := encodeShape(b, c, nil, res)

	b.Run("stage=encode_batch", func(b *testing.B) { // coordinator: Link.RoundTrip
		b.SetBytes(int64(len(batchBytes)))
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			if buf, err = c.AppendBatch(buf[:0], batch); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stage=decode_batch", func(b *testing.B) { // worker: handle
		b.SetBytes(int64(len(batchBytes)))
		b.ReportAllocs()
		var into Batch
		for b.Loop() {
			if err := c.DecodeBatch(batchBytes, &into); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stage=worker_decode_encode", func(b *testing.B) { // worker: handle, bar compute
		b.SetBytes(int64(len(batchBytes) + len(resBytes)))
		b.ReportAllocs()
		var into Batch
		var out Result
		var buf []byte
		for b.Loop() {
			if err := c.DecodeBatch(batchBytes, &into); err != nil {
				b.Fatal(err)
			}
			out.BatchID, out.Attempt, out.Token, out.Out = into.ID, into.Attempt, into.Token, res.Out
			if buf, err = c.AppendResult(buf[:0], &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stage=decode_result", func(b *testing.B) { // coordinator: Link.RoundTrip into a pooled Result
		b.SetBytes(int64(len(resBytes)))
		b.ReportAllocs()
		var into Result
		for b.Loop() {
			if err := c.DecodeResult(resBytes, &into); err != nil {
				b.Fatal(err)
			}
		}
	})
}
