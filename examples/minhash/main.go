// Command minhash is ferry with a MinHash workload: one signature per
// document whose entries agree, between two documents, about as often as
// their sets of word shingles overlap (Jaccard similarity), so
// near-duplicates are found by comparing 128 numbers instead of texts.
package main

import (
	"encoding/binary"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/ferrylab/ferry"
	"github.com/ferrylab/ferry/workload"
)

type Params struct {
	Shingle int `param:"shingle" min:"1" max:"16" doc:"words per shingle"`
	Hashes  int `param:"hashes" min:"1" max:"1024" doc:"signature length, uint32s per document"`
}

var MinHash = workload.Define("minhash", Params{Shingle: 3, Hashes: 128}, func(p Params) (workload.Workload, error) {
	return workload.Func("minhash", func(docs []string, out *workload.Output) (err error) {
		out.Stride = 4 * p.Hashes
		for _, doc := range docs {
			words, sig := strings.Fields(strings.ToLower(doc)), make([]uint32, p.Hashes)
			for i := 0; i == 0 || i+p.Shingle <= len(words); i++ {
				h := xxhash.Sum64String(strings.Join(words[i:min(i+p.Shingle, len(words))], " "))
				for j := range sig { // hash function j: h mixed with j; sig keeps the least, as its complement
					sig[j] = max(sig[j], ^uint32((h^uint64(j)*0x9e3779b97f4a7c15)*0xbf58476d1ce4e5b9>>32))
				}
			}
			out.Data, err = binary.Append(out.Data, binary.LittleEndian, sig)
		}
		return err
	}), nil
})

func main() { ferry.Main(MinHash) }
