package proto

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// maxSeed keeps large hostile messages out of the fuzz seeds: the mutator is
// slow on them and the hostile table already covers them.
const maxSeed = 16 << 10

// addSeeds adds valid encodings of both codecs and the small hostile messages.
func addSeeds(f *testing.F, valid [][]byte) {
	f.Helper()
	for _, b := range valid {
		if len(b) <= maxSeed {
			f.Add(b)
		}
	}
	for _, tc := range hostileCases(f) {
		if len(tc.msg) <= maxSeed {
			f.Add(tc.msg)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	cs := codecs(f)
	var valid [][]byte
	for _, c := range cs {
		for _, s := range batchShapes {
			b, err := c.AppendBatch(nil, s.b)
			if err != nil {
				f.Fatal(err)
			}
			valid = append(valid, b)
		}
	}
	addSeeds(f, valid)
	f.Fuzz(func(t *testing.T, src []byte) {
		for _, c := range cs {
			var b Batch
			err := c.DecodeBatch(src, &b)
			if err != nil {
				if !isDecodeErr(err) {
					t.Fatalf("%s: error %q wraps no proto sentinel", c.Name(), err)
				}
				continue
			}
			enc, err := c.AppendBatch(nil, &b)
			if err != nil {
				t.Fatalf("%s: re-encode a decoded batch: %v", c.Name(), err)
			}
			var b2 Batch
			if err := c.DecodeBatch(enc, &b2); err != nil {
				t.Fatalf("%s: decode a re-encoded batch: %v\ninput %x\nre-encoded %x", c.Name(), err, src, enc)
			}
			if got, want := normBatch(b2), normBatch(b); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: round trip changed the batch:\n got %+v\nwant %+v", c.Name(), got, want)
			}
		}
	})
}

func FuzzDecodeResult(f *testing.F) {
	cs := codecs(f)
	var valid [][]byte
	for _, c := range cs {
		for _, s := range resultShapes {
			b, err := c.AppendResult(nil, s.r)
			if err != nil {
				f.Fatal(err)
			}
			valid = append(valid, b)
		}
	}
	addSeeds(f, valid)
	f.Fuzz(func(t *testing.T, src []byte) {
		for _, c := range cs {
			var r Result
			err := c.DecodeResult(src, &r)
			if err != nil {
				if !isDecodeErr(err) {
					t.Fatalf("%s: error %q wraps no proto sentinel", c.Name(), err)
				}
				continue
			}
			enc, err := c.AppendResult(nil, &r)
			if err != nil {
				t.Fatalf("%s: re-encode a decoded result: %v", c.Name(), err)
			}
			var r2 Result
			if err := c.DecodeResult(enc, &r2); err != nil {
				t.Fatalf("%s: decode a re-encoded result: %v\ninput %x\nre-encoded %x", c.Name(), err, src, enc)
			}
			if !sameResult(r2, r) {
				t.Fatalf("%s: round trip changed the result:\n got %+v\nwant %+v", c.Name(), r2, r)
			}
		}
	})
}

// FuzzCheck holds Check to what it promises: what it accepts is one whole
// msgpack value (the library can step over it and nothing remains), and a
// deeper limit never rejects what a shallower one accepted.
func FuzzCheck(f *testing.F) {
	var valid [][]byte
	for _, c := range codecs(f) {
		for _, s := range batchShapes {
			b, _ := c.AppendBatch(nil, s.b)
			valid = append(valid, b)
		}
		for _, s := range resultShapes {
			b, _ := c.AppendResult(nil, s.r)
			valid = append(valid, b)
		}
	}
	valid = append(valid, []byte{0xd4, 1, 2}, []byte{0xc7, 1, 5, 9}, []byte{0x82, 0x91, 0, 0xc3, 0xa1, 'k', 0xcb, 0, 0, 0, 0, 0, 0, 0, 0})
	addSeeds(f, valid)
	f.Fuzz(func(t *testing.T, src []byte) {
		const depth = 16
		err := Check(src, depth)
		if err != nil {
			if !isDecodeErr(err) {
				t.Fatalf("error %q wraps no proto sentinel", err)
			}
			return
		}
		if err := Check(src, depth+1); err != nil {
			t.Fatalf("accepted at depth %d, rejected at %d: %v", depth, depth+1, err)
		}
		rd := bytes.NewReader(src)
		if err := msgpack.NewDecoder(rd).Skip(); err != nil {
			t.Fatalf("accepted, but msgpack cannot skip it: %v", err)
		}
		if rd.Len() != 0 {
			t.Fatalf("accepted, but msgpack leaves %d bytes after one value", rd.Len())
		}
	})
}

// FuzzParseStages: a worker's Ferry-Stages-Ns header is untrusted; every
// field reads as a non-negative duration or zero, never a panic.
func FuzzParseStages(f *testing.F) {
	f.Add("1 2 3")
	f.Add("1 2 3 4")
	f.Add("1 2 3 0 9")
	f.Add("-1 x 3  4 99999999999999999999")
	f.Fuzz(func(t *testing.T, v string) {
		d, c, e := ParseStages(v)
		p, q := ParsePipeStage(v), ParseQueueStage(v)
		for i, x := range []time.Duration{d, c, e, p, q} {
			if x < 0 {
				t.Fatalf("field %d of %q = %v, below zero", i, v, x)
			}
		}
	})
}
