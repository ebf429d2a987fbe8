package proto

import (
	"fmt"
	"testing"
	"time"
)

// benchShapes are the payloads of BenchmarkCodec. Each is a Batch or a Result.
var benchShapes = []struct {
	name string
	b    *Batch
	r    *Result
}{
	{name: "embed100", r: embedResult(100, 384)}, // 100 x 384 float32, 150 KiB
	{name: "batch100", b: batchOf(docsOf(100, 600))},
	{name: "chunk100", r: chunkResult(400)},
}

// BenchmarkCodec measures each codec on each shape, one op at a time, with
// MB/s counted on the encoded size.
//
//	go test -run '^$' -bench BenchmarkCodec -benchtime 2000x ./proto/
func BenchmarkCodec(b *testing.B) {
	for _, c := range codecs(b) {
		for _, s := range benchShapes {
			enc := encodeShape(b, c, s.b, s.r)
			b.Run(fmt.Sprintf("codec=%s/shape=%s/op=encode", c.Name(), s.name), func(b *testing.B) {
				b.SetBytes(int64(len(enc)))
				b.ReportAllocs()
				dst := make([]byte, 0, len(enc))
				var err error
				b.ResetTimer()
				for range b.N {
					if s.b != nil {
						dst, err = c.AppendBatch(dst[:0], s.b)
					} else {
						dst, err = c.AppendResult(dst[:0], s.r)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("codec=%s/shape=%s/op=decode", c.Name(), s.name), func(b *testing.B) {
				b.SetBytes(int64(len(enc)))
				b.ReportAllocs()
				var batch Batch
				var res Result
				var err error
				b.ResetTimer()
				for range b.N {
					if s.b != nil {
						err = c.DecodeBatch(enc, &batch)
					} else {
						err = c.DecodeResult(enc, &res)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkCodecRatio times an encode plus a decode of embed100 with each
// codec in the same run and reports msgpack's time over packed's as
// "speedup", which survives a noisy machine better than either time alone.
// ns/op covers both codecs' round trips; packed-MB/s counts the encoded
// bytes once per packed round trip. The goal: packed >= 1 GB/s and
// >= 20x msgpack.
func BenchmarkCodecRatio(b *testing.B) {
	s := benchShapes[0]
	cs := codecs(b)
	roundTrip := func(c Codec, dst []byte, r *Result) ([]byte, error) {
		dst, err := c.AppendResult(dst[:0], s.r)
		if err != nil {
			return dst, err
		}
		return dst, c.DecodeResult(dst, r)
	}
	b.Run("shape=embed100/op=roundtrip", func(b *testing.B) {
		n := len(encodeShape(b, cs[0], nil, s.r))
		b.ReportAllocs()
		var per [2]time.Duration
		for i, c := range cs {
			var dst []byte
			var r Result
			var err error
			start := time.Now()
			for range b.N {
				if dst, err = roundTrip(c, dst, &r); err != nil {
					b.Fatal(err)
				}
			}
			per[i] = time.Since(start)
		}
		b.ReportMetric(float64(per[0].Nanoseconds())/float64(b.N), "packed-ns/op")
		b.ReportMetric(float64(per[1].Nanoseconds())/float64(b.N), "msgpack-ns/op")
		b.ReportMetric(float64(per[1])/float64(per[0]), "speedup")
		b.ReportMetric(float64(n)*float64(b.N)/per[0].Seconds()/1e6, "packed-MB/s")
	})
}

func encodeShape(tb testing.TB, c Codec, bt *Batch, r *Result) []byte {
	tb.Helper()
	var enc []byte
	var err error
	if bt != nil {
		enc, err = c.AppendBatch(nil, bt)
	} else {
		enc, err = c.AppendResult(nil, r)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return enc
}
