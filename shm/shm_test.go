package shm

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestDescRoundTrip(t *testing.T) {
	for _, d := range []Desc{
		{Kind: KindHello, ID: "abcDEF123-_"},
		{Kind: KindBatch, Codec: 1, BatchID: 1<<63 + 5, Attempt: 3, Pair: 1, Offset: 8192, Length: 4000, Token: [16]byte{1, 2, 3}},
		{Kind: KindResult, BatchID: 9, Attempt: 1, Pair: 0, Offset: 4096, Length: 1, Decode: 5, Compute: time.Second, Encode: 7, Pipe: 8},
		{Kind: KindError, Code: 413, Length: 12},
	} {
		var got Desc
		if err := Parse(d.Append(nil), &got); err != nil {
			t.Fatalf("%+v: %v", d, err)
		}
		if got != d {
			t.Errorf("round trip: got %+v, want %+v", got, d)
		}
	}
}

func TestParseRejects(t *testing.T) {
	good := (&Desc{Kind: KindBatch, Length: 10}).Append(nil)
	hello := (&Desc{Kind: KindHello, ID: "w1"}).Append(nil)
	mut := func(b []byte, f func([]byte)) []byte { c := bytes.Clone(b); f(c); return c }
	for _, tc := range []struct {
		name string
		p    []byte
	}{
		{"empty", nil},
		{"short", good[:DescSize-1]},
		{"magic", mut(good, func(b []byte) { b[0] = 'X' })},
		{"version", mut(good, func(b []byte) { b[2] = 2 })},
		{"kind 0", mut(good, func(b []byte) { b[3] = 0 })},
		{"kind 9", mut(good, func(b []byte) { b[3] = 9 })},
		{"reserved byte", mut(good, func(b []byte) { b[5] = 1 })},
		{"reserved word", mut(good, func(b []byte) { b[37] = 1 })},
		{"trailing bytes on a batch", append(bytes.Clone(good), 'x')},
		{"stage over an hour", mut(good, func(b []byte) { b[63] = 0xff })},
		{"hello without ID", hello[:DescSize]},
		{"hello ID too long", append(bytes.Clone(hello), bytes.Repeat([]byte{'a'}, MaxHelloID)...)},
		{"hello ID with a dot", append(bytes.Clone(hello), '.')},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d Desc
			if err := Parse(tc.p, &d); !errors.Is(err, ErrDescriptor) {
				t.Errorf("Parse = %v, want ErrDescriptor", err)
			}
		})
	}
}

func TestGeometryCheck(t *testing.T) {
	g := Geometry{Pairs: 2, SlotSize: 4096}
	for _, tc := range []struct {
		name string
		d    Desc
		ok   bool
	}{
		{"batch in pair 1", Desc{Kind: KindBatch, Pair: 1, Offset: 8192, Length: 4096}, true},
		{"result in pair 0", Desc{Kind: KindResult, Pair: 0, Offset: 4096, Length: 0}, true},
		{"pair out of range", Desc{Kind: KindBatch, Pair: 2, Offset: 16384}, false},
		{"batch in a result slot", Desc{Kind: KindBatch, Pair: 0, Offset: 4096}, false},
		{"result in a request slot", Desc{Kind: KindResult, Pair: 1, Offset: 8192}, false},
		{"length over the slot", Desc{Kind: KindResult, Pair: 1, Offset: 12288, Length: 4097}, false},
		{"offset past the region", Desc{Kind: KindError, Pair: 1, Offset: 1 << 40}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := g.Check(&tc.d)
			if got := err == nil; got != tc.ok {
				t.Errorf("Check = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestGeometryValidate(t *testing.T) {
	for _, g := range []Geometry{{0, 4096}, {MaxPairs + 1, 4096}, {1, 100}, {1, MaxSlotSize + 1}} {
		if g.Validate() == nil {
			t.Errorf("%+v: Validate = nil, want an error", g)
		}
	}
}

// FuzzParse: no datagram crashes Parse, and one it accepts re-encodes to
// the same bytes (the format has one spelling) and passes or fails Check
// without panicking.
func FuzzParse(f *testing.F) {
	f.Add((&Desc{Kind: KindHello, ID: "w"}).Append(nil))
	f.Add((&Desc{Kind: KindBatch, Pair: 1, Offset: 8192, Length: 10, Token: [16]byte{9}}).Append(nil))
	f.Add((&Desc{Kind: KindResult, Pair: 0, Offset: 4096, Compute: 1e6}).Append(nil))
	f.Add((&Desc{Kind: KindError, Code: 500, Offset: 1 << 62, Length: 1 << 31}).Append(nil))
	f.Add([]byte("FS\x01"))
	g := Geometry{Pairs: 2, SlotSize: 4096}
	f.Fuzz(func(t *testing.T, p []byte) {
		var d Desc
		if Parse(p, &d) != nil {
			return
		}
		if back := d.Append(nil); !bytes.Equal(back, p) && d.Kind != KindHello {
			t.Fatalf("re-encoded %x, parsed from %x", back, p)
		}
		if g.Check(&d) == nil && d.Kind != KindHello {
			if end := d.Offset + uint64(d.Length); end > uint64(g.Size()) {
				t.Fatalf("Check passed a slot ending at %d in a %d-byte region", end, g.Size())
			}
		}
	})
}
