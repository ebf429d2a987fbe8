package proto

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"

	"github.com/ferrylab/ferry/corpus"
)

func compressedCodecs(tb testing.TB, maxBytes int) []Codec {
	tb.Helper()
	var cs []Codec
	for _, c := range codecs(tb) {
		cc, err := NewCompressed(c, CompressS2, maxBytes)
		if err != nil {
			tb.Fatal(err)
		}
		cs = append(cs, cc)
	}
	return cs
}

func TestCompressedRoundTrip(t *testing.T) {
	for _, c := range compressedCodecs(t, 64<<20) {
		for _, tc := range batchShapes {
			t.Run(fmt.Sprintf("codec=%s/batch/%s", c.Name(), tc.name), func(t *testing.T) {
				enc, err := c.AppendBatch([]byte("prefix"), tc.b)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(string(enc), "prefix") {
					t.Fatal("AppendBatch did not append")
				}
				var b Batch
				if err := c.DecodeBatch(enc[len("prefix"):], &b); err != nil {
					t.Fatal(err)
				}
				if got, want := normBatch(b), normBatch(*tc.b); !reflect.DeepEqual(got, want) {
					t.Fatalf("round trip changed the batch:\n got %+v\nwant %+v", got, want)
				}
			})
		}
		for _, tc := range resultShapes {
			t.Run(fmt.Sprintf("codec=%s/result/%s", c.Name(), tc.name), func(t *testing.T) {
				enc, err := c.AppendResult(nil, tc.r)
				if err != nil {
					t.Fatal(err)
				}
				var r Result
				if err := c.DecodeResult(enc, &r); err != nil {
					t.Fatal(err)
				}
				if !sameResult(r, *tc.r) {
					t.Fatalf("round trip changed the result:\n got %+v\nwant %+v", r, *tc.r)
				}
			})
		}
	}
}

// Text compresses; the point of the option. (docsOf's random letters do
// not: s2 finds repeats, it does not code entropy.)
func TestCompressedShrinksText(t *testing.T) {
	plain := codecs(t)[0]
	c := compressedCodecs(t, 64<<20)[0]
	g, err := corpus.Generated(corpus.GenConfig{Docs: 100})
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for i := range int64(100) {
		docs = append(docs, g.Doc(i).Text)
	}
	b := batchOf(docs)
	p, _ := plain.AppendBatch(nil, b)
	z, err := c.AppendBatch(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(z) >= len(p)*85/100 { // about 0.77 on the generated corpus
		t.Errorf("compressed batch is %d bytes, plain %d: want at least 15%% off", len(z), len(p))
	}
}

// A result decoded through the pooled buffer must not change when the
// buffer is reused for the next one.
func TestCompressedResultDoesNotAliasScratch(t *testing.T) {
	for _, c := range compressedCodecs(t, 64<<20) {
		first, second := dataResult(10, 32), embedResult(10, 8)
		e1, _ := c.AppendResult(nil, first)
		e2, _ := c.AppendResult(nil, second)
		var r1, r2 Result
		if err := c.DecodeResult(e1, &r1); err != nil {
			t.Fatal(err)
		}
		keep := normResult(r1)
		keep.Out.Data = append([]byte(nil), r1.Out.Data...)
		if err := c.DecodeResult(e2, &r2); err != nil {
			t.Fatal(err)
		}
		if !sameResult(r1, keep) || !sameResult(r1, *first) {
			t.Fatalf("%s: the first result changed when the second was decoded", c.Name())
		}
	}
}

// The declared size is checked before anything is allocated: a 10-byte
// message claiming a gigabyte costs nothing.
func TestCompressedBoundsDecodedSize(t *testing.T) {
	// An s2 block starts with the decoded length as a uvarint.
	huge := append(appendUvarint(nil, 1<<30), 0x00, 0x01, 0x02)
	for _, c := range compressedCodecs(t, 1<<20) {
		for name, decode := range map[string]func([]byte) error{
			"batch":  func(b []byte) error { var x Batch; return c.DecodeBatch(b, &x) },
			"result": func(b []byte) error { var x Result; return c.DecodeResult(b, &x) },
		} {
			var err error
			alloc := measureAlloc(func() { err = decode(huge) })
			if !errors.Is(err, ErrLimit) {
				t.Errorf("%s %s: err = %v, want ErrLimit", c.Name(), name, err)
			}
			if alloc > 64<<10 {
				t.Errorf("%s %s: allocated %d bytes rejecting a hostile size", c.Name(), name, alloc)
			}
			// Within the bound, but not s2: malformed, not a panic.
			if err := decode([]byte{0x05, 0xff, 0xff}); !isDecodeErr(err) {
				t.Errorf("%s %s: corrupt input: err = %v, want a proto sentinel", c.Name(), name, err)
			}
		}
	}
}

// A message within the size bound that does not decode to the size it
// declares is refused before the declared size is allocated: a few hostile
// bytes claiming max_payload cost nothing. Only a well-formed block, whose
// copies really produce that many bytes, gets its buffer.
func TestCompressedCorruptCostsNothing(t *testing.T) {
	const bound = 8 << 20
	hostile := map[string][]byte{
		// declares 8 MiB, then one literal byte
		"short literal": append(appendUvarint(nil, bound), 0x00, 'x'),
		// declares 8 MiB, then a copy before any output
		"copy before output": append(appendUvarint(nil, bound), 0x01, 0x01),
		// declares 8 MiB, produces 4 MiB: one byte, then repeats of it
		"half the declared size": func() []byte {
			b := append(appendUvarint(nil, bound), 0x00, 'x', 0x05, 0x01) // literal "x", copy1 offset 1 length 5
			for n := 6; n < 4<<20; n += 1<<16 + 1<<16 {
				// repeat (copy1 offset 0, length code 7): 3 length bytes, 1<<16 + v + 4
				b = append(b, 0x1d, 0x00, 0xfc, 0xff, 0x00)
			}
			return b
		}(),
	}
	for _, c := range compressedCodecs(t, bound) {
		for name, msg := range hostile {
			var err error
			alloc := measureAlloc(func() { var r Result; err = c.DecodeResult(msg, &r) })
			if !isDecodeErr(err) {
				t.Errorf("%s %s: err = %v, want a proto sentinel", c.Name(), name, err)
			}
			if alloc > 64<<10 {
				t.Errorf("%s %s: allocated %d bytes for a %d-byte corrupt message", c.Name(), name, alloc, len(msg))
			}
		}
	}
}

// s2Len must agree with s2.Decode on every input: the same verdict, and
// on success the decoded length.
func FuzzS2Len(f *testing.F) {
	for _, s := range resultShapes {
		b, _ := compressedCodecs(f, 1<<20)[0].AppendResult(nil, s.r)
		f.Add(b)
	}
	f.Add(s2.Encode(nil, make([]byte, 1<<16)))
	f.Add([]byte{0x05, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, src []byte) {
		n, err := s2Len(src, 1<<20)
		if dl, lerr := s2.DecodedLen(src); lerr == nil && dl > 1<<20 {
			if err == nil {
				t.Fatalf("s2Len accepted %d bytes over the bound", dl)
			}
			return // too large to hand to s2.Decode
		}
		out, derr := s2.Decode(nil, src)
		if (err == nil) != (derr == nil) {
			t.Fatalf("s2Len err = %v, s2.Decode err = %v", err, derr)
		}
		if err == nil && n != len(out) {
			t.Fatalf("s2Len = %d, decoded %d bytes", n, len(out))
		}
	})
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func TestNewCompressed(t *testing.T) {
	plain := codecs(t)[0]
	if c, err := NewCompressed(plain, CompressNone, 0); err != nil || c != plain {
		t.Errorf("NewCompressed(none) = %v, %v; want the codec itself", c, err)
	}
	if _, err := NewCompressed(plain, "zstd", 1<<20); err == nil || !strings.Contains(err.Error(), "zstd") {
		t.Errorf("NewCompressed(zstd) error = %v, want one naming it", err)
	}
	if _, err := NewCompressed(plain, CompressS2, 0); err == nil {
		t.Error("NewCompressed(s2) with no size bound succeeded")
	}
}

// FuzzDecodeCompressed holds the s2 wrapper to the decoders' promise: any
// input gives a result or a proto error, never a panic or a huge allocation.
func FuzzDecodeCompressed(f *testing.F) {
	cs := compressedCodecs(f, 1<<20)
	var valid [][]byte
	for _, c := range cs {
		for _, s := range resultShapes {
			b, _ := c.AppendResult(nil, s.r)
			valid = append(valid, b)
		}
		for _, s := range batchShapes {
			b, _ := c.AppendBatch(nil, s.b)
			valid = append(valid, b)
		}
	}
	addSeeds(f, valid)
	f.Fuzz(func(t *testing.T, src []byte) {
		for _, c := range cs {
			var r Result
			if err := c.DecodeResult(src, &r); err != nil && !isDecodeErr(err) {
				t.Fatalf("%s result: error %q wraps no proto sentinel", c.Name(), err)
			}
			var b Batch
			if err := c.DecodeBatch(src, &b); err != nil && !isDecodeErr(err) {
				t.Fatalf("%s batch: error %q wraps no proto sentinel", c.Name(), err)
			}
		}
	})
}
