// Command compress is ferry with a compression workload: each document
// compressed on its own with zstd (github.com/klauspost/compress), for a
// store that fetches one document at a time. The result is bytes of any
// length per document, written by --out .jsonl as base64.
package main

import (
	"github.com/ferrylab/ferry"
	"github.com/ferrylab/ferry/workload"
	"github.com/klauspost/compress/zstd"
)

type Params struct {
	Level int `param:"level" min:"1" max:"4" doc:"zstd level: 1 fastest, 2 default, 3 better, 4 best"`
}

var Compress = workload.Define("zstd", Params{Level: 3}, func(p Params) (workload.Workload, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevel(p.Level)), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	return workload.Func("zstd", func(docs []string, out *workload.Output) error {
		for _, doc := range docs {
			if err := out.AppendDoc(enc.EncodeAll([]byte(doc), nil)); err != nil {
				return err
			}
		}
		return nil
	}), nil
})

func main() { ferry.Main(Compress) }
