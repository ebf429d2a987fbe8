package shm

import (
	"fmt"
	"os"
)

// Geometry is a region's shape: Pairs slot pairs (a request slot and a
// result slot each) of SlotSize bytes. A region's size is fixed at
// creation: 2 x Pairs x SlotSize, the whole of a worker's shared memory.
type Geometry struct {
	Pairs    int
	SlotSize int
}

// Limits on a region, so a bad environment variable cannot map gigabytes.
const (
	MaxPairs    = 64
	MaxSlotSize = 64 << 20
)

// Size is the region's size in bytes.
func (g Geometry) Size() int { return 2 * g.Pairs * g.SlotSize }

// Validate checks g against the limits.
func (g Geometry) Validate() error {
	if g.Pairs < 1 || g.Pairs > MaxPairs || g.SlotSize < 4096 || g.SlotSize > MaxSlotSize {
		return fmt.Errorf("shm: %d pairs of %d-byte slots: want 1 to %d pairs of 4 KiB to 64 MiB", g.Pairs, g.SlotSize, MaxPairs)
	}
	return nil
}

// RequestOffset and ResultOffset are where pair i's slots begin.
func (g Geometry) RequestOffset(i uint32) uint64 { return uint64(2*int(i)) * uint64(g.SlotSize) }
func (g Geometry) ResultOffset(i uint32) uint64  { return g.RequestOffset(i) + uint64(g.SlotSize) }

// Check checks d's slot against g: the pair exists, the offset is that
// pair's request slot (KindBatch) or result slot (KindResult, KindError),
// and the length fits in the slot.
func (g Geometry) Check(d *Desc) error {
	if d.Kind == KindHello || d.Kind == KindBye || d.Kind == KindByeAck {
		return nil // no slot
	}
	if int(d.Pair) >= g.Pairs {
		return fmt.Errorf("%w: pair %d of %d", ErrDescriptor, d.Pair, g.Pairs)
	}
	want := g.ResultOffset(d.Pair)
	if d.Kind == KindBatch {
		want = g.RequestOffset(d.Pair)
	}
	if d.Offset != want {
		return fmt.Errorf("%w: offset %d, pair %d's slot is at %d", ErrDescriptor, d.Offset, d.Pair, want)
	}
	if int(d.Length) > g.SlotSize {
		return fmt.Errorf("%w: length %d over the %d-byte slot", ErrDescriptor, d.Length, g.SlotSize)
	}
	return nil
}

// Region is a mapped shared-memory region.
type Region struct {
	Geometry
	mem  []byte
	file *os.File // the memfd; nil once mapped and closed (the mapping holds the memory)
}

// Request is pair i's request slot, its whole capacity.
func (r *Region) Request(i uint32) []byte {
	o := r.RequestOffset(i)
	return r.mem[o : o : o+uint64(r.SlotSize)]
}

// Result is pair i's result slot, its whole capacity.
func (r *Region) Result(i uint32) []byte {
	o := r.ResultOffset(i)
	return r.mem[o : o : o+uint64(r.SlotSize)]
}

// Bytes is the region's [off, off+n), which Geometry.Check has allowed.
func (r *Region) Bytes(off uint64, n uint32) []byte { return r.mem[off : off+uint64(n)] }

// File is the memfd, to pass to the worker; nil after CloseFile.
func (r *Region) File() *os.File { return r.file }

// CloseFile closes this process's descriptor of the memfd; the mapping
// keeps the memory until Unmap.
func (r *Region) CloseFile() {
	if r.file != nil {
		r.file.Close()
		r.file = nil
	}
}
