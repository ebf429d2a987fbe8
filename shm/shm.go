// Package shm is ferry's shared-memory data plane for worker processes on
// the coordinator's host: a region of memory (an anonymous memfd, so it
// has no name and vanishes with the last process holding it) cut into
// fixed slots, and the fixed-size descriptors that say which slot holds a
// batch or a result. Descriptors travel on a SOCK_SEQPACKET socket pair,
// not through the broker: a batch costs two small datagrams and no copy
// through a broker.
//
// It is ground-level, like proto: the coordinator, the worker and the
// fleet import it; it imports nothing of ferry's. It does not encode
// batches (proto's codecs do, straight into a slot) and it does not decide
// who gets which batch (the coordinator does). Every descriptor read from
// the socket is hostile until Parse and Region.Check pass it.
package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Kind is what a descriptor announces.
type Kind uint8

const (
	KindHello  Kind = 1 // worker -> coordinator, first: its micro service ID follows the descriptor
	KindBatch  Kind = 2 // coordinator -> worker: a batch in the pair's request slot
	KindResult Kind = 3 // worker -> coordinator: the result in the pair's result slot
	KindError  Kind = 4 // worker -> coordinator: Code, and the message text in the result slot
	KindBye    Kind = 5 // worker -> coordinator: stopping; send nothing more
	KindByeAck Kind = 6 // coordinator -> worker: nothing more will come; serve what came before, then go
)

// Descriptor layout, little endian, DescSize bytes:
//
//	 0  magic 'F' 'S'       2  version (1)     3  kind
//	 4  codec (index in proto.CodecNames)      5  reserved (0)
//	 6  code uint16 (KindError: 400, 413, 500)
//	 8  batch ID uint64    16  attempt uint32  20  pair uint32
//	24  offset uint64      32  length uint32   36  reserved (0)
//	40  token [16]byte
//	56  decode ns   64  compute ns   72  encode ns   80  pipe ns (uint64 each)
const (
	DescSize = 88
	Version  = 1
	// MaxHelloID bounds the ID a hello carries after its descriptor.
	MaxHelloID = 128
	// MaxPacket is the largest datagram either end reads.
	MaxPacket = DescSize + MaxHelloID
)

var magic = [2]byte{'F', 'S'}

// ErrDescriptor is wrapped by every error of Parse and Region.Check.
var ErrDescriptor = errors.New("shm: bad descriptor")

// Desc is one descriptor.
type Desc struct {
	Kind    Kind
	Codec   uint8
	Code    uint16
	BatchID uint64
	Attempt uint32
	Pair    uint32
	Offset  uint64
	Length  uint32
	Token   [16]byte
	// The worker's stages (KindResult); zero elsewhere.
	Decode, Compute, Encode, Pipe time.Duration
	// ID is a hello's worker ID (KindHello only).
	ID string
}

// Append appends d's datagram to b.
func (d *Desc) Append(b []byte) []byte {
	var p [DescSize]byte
	p[0], p[1], p[2], p[3] = magic[0], magic[1], Version, byte(d.Kind)
	p[4] = d.Codec
	le := binary.LittleEndian
	le.PutUint16(p[6:], d.Code)
	le.PutUint64(p[8:], d.BatchID)
	le.PutUint32(p[16:], d.Attempt)
	le.PutUint32(p[20:], d.Pair)
	le.PutUint64(p[24:], d.Offset)
	le.PutUint32(p[32:], d.Length)
	copy(p[40:56], d.Token[:])
	le.PutUint64(p[56:], uint64(max(d.Decode, 0)))
	le.PutUint64(p[64:], uint64(max(d.Compute, 0)))
	le.PutUint64(p[72:], uint64(max(d.Encode, 0)))
	le.PutUint64(p[80:], uint64(max(d.Pipe, 0)))
	b = append(b, p[:]...)
	if d.Kind == KindHello {
		b = append(b, d.ID...)
	}
	return b
}

// maxStage bounds a stage time read from the wire (an hour), so a sum of
// stages cannot overflow.
const maxStage = uint64(time.Hour)

// Parse reads one datagram into d. It checks what the datagram alone can
// tell (magic, version, kind, reserved bytes, sizes, stage times, the
// hello's ID); Region.Check checks the slot against the region.
func Parse(p []byte, d *Desc) error {
	if len(p) < DescSize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrDescriptor, len(p), DescSize)
	}
	if p[0] != magic[0] || p[1] != magic[1] {
		return fmt.Errorf("%w: magic %x", ErrDescriptor, p[:2])
	}
	if p[2] != Version {
		return fmt.Errorf("%w: version %d, want %d", ErrDescriptor, p[2], Version)
	}
	le := binary.LittleEndian
	k := Kind(p[3])
	if k < KindHello || k > KindByeAck {
		return fmt.Errorf("%w: kind %d", ErrDescriptor, k)
	}
	if p[5] != 0 || le.Uint32(p[36:]) != 0 {
		return fmt.Errorf("%w: reserved bytes set", ErrDescriptor)
	}
	if extra := len(p) - DescSize; k == KindHello && (extra < 1 || extra > MaxHelloID) || k != KindHello && extra != 0 {
		return fmt.Errorf("%w: %d bytes after a %d descriptor", ErrDescriptor, extra, k)
	}
	*d = Desc{
		Kind: k, Codec: p[4], Code: le.Uint16(p[6:]),
		BatchID: le.Uint64(p[8:]), Attempt: le.Uint32(p[16:]), Pair: le.Uint32(p[20:]),
		Offset: le.Uint64(p[24:]), Length: le.Uint32(p[32:]),
	}
	copy(d.Token[:], p[40:56])
	st := [4]*time.Duration{&d.Decode, &d.Compute, &d.Encode, &d.Pipe}
	for i, dst := range st {
		v := le.Uint64(p[56+8*i:])
		if v > maxStage {
			return fmt.Errorf("%w: stage time %d ns", ErrDescriptor, v)
		}
		*dst = time.Duration(v)
	}
	if k == KindHello {
		id := p[DescSize:]
		for _, c := range id {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%w: hello ID has byte %#x", ErrDescriptor, c)
			}
		}
		d.ID = string(id)
	}
	return nil
}
