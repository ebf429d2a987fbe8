package coordinator

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/shm"
)

// Data planes: how a batch and its result travel to a worker and back.
const (
	PlaneNATS = "nats" // in the NATS message (the default)
	PlaneShm  = "shm"  // in shared memory, announced on a unix socket (local fleets only)
)

// errLost is a round trip's error when the worker's end closed with the
// batch in it: the worker died, perhaps of this batch, so the batch is
// failed (retried, then bisected), not requeued as a never-delivered one.
var errLost = errors.New("worker gone with the batch")

// roundTripper is a lane's line to one worker: a Link over NATS, or an
// ShmLink over shared memory.
type roundTripper interface {
	RoundTrip(ctx context.Context, b *proto.Batch, into *proto.Result, timeout time.Duration) (Result, error)
	Close() error
}

// shmLookupWait bounds how long a lane waits for a worker's hello to be
// read when the worker's NATS discovery came first.
const shmLookupWait = 2 * time.Second

// openLink opens a lane's line to worker addr: over shared memory when the
// backend has a registry, the worker has an endpoint in it and one of its
// slot pairs is free; over NATS otherwise (a remote worker, a container,
// a worker without shm): the fallback is automatic and Stats.Planes says
// which plane carried each worker's batches (the lane notes it at its
// first result, so a worker that died before answering is on no plane).
func (p *Processes) openLink(ctx context.Context, addr string) (_ roundTripper, plane string, _ error) {
	if p.shm != nil {
		if ep := p.shm.Lookup(ctx, AddrID(addr), shmLookupWait); ep != nil {
			if l, ok := NewShmLink(ep, p.codec, addr); ok {
				return l, PlaneShm, nil
			}
		}
	}
	l, err := NewLink(p.nc, p.codec, addr)
	return l, PlaneNATS, err
}

// notePlane records that a lane of worker addr runs on plane; a worker
// with lanes on both is "shm+nats".
func (p *Processes) notePlane(addr, plane string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.planes == nil {
		p.planes = map[string]string{}
	}
	have := p.planes[addr]
	switch {
	case have == "" || have == plane:
		p.planes[addr] = plane
	case !strings.Contains(have, plane):
		both := []string{have, plane}
		slices.Sort(both)
		p.planes[addr] = strings.Join(both, "+")
	}
}

// Planes is the data plane each worker's lanes used, by worker address:
// "nats", "shm", or "nats+shm" when some lanes fell back (every slot pair
// held).
func (p *Processes) Planes() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.planes)
}

// AddrID is the micro service ID of a worker address (<login>.<id>).
func AddrID(addr string) string {
	_, id, _ := strings.Cut(addr, ".")
	return id
}

// ShmLink is a lane's line to one worker over shared memory (and what
// `ferry bench transport` times beside a Link): it holds one
// slot pair of the worker's region, encodes each batch straight into the
// request slot, announces it on the socket, waits for the worker's reply
// descriptor and decodes the result from the result slot.
//
// Every guarantee of a Link holds: each send carries a new token, and a
// reply whose token, batch ID, attempt or slot does not match is dropped
// and counted in Result.Forged; a batch has a deadline; a worker whose
// socket closes before the batch is sent is gone (requeue), one whose
// socket closes with the batch in it lost it (retry, then bisection); a
// batch or result over the slot is too large (split).
type ShmLink struct {
	ep     *shm.Endpoint
	pair   *shm.Pair
	codec  proto.Codec // plain: shared memory is not worth compressing
	index  uint8       // the codec's index in proto.CodecNames
	worker string
	buf    []byte // the result, copied out of the slot before decoding (codecs other than packed)
	// inPlace decodes results straight from the slot: the packed decoder
	// reads each byte once, bounds every length by the bytes it was given
	// and copies what it keeps, so a worker writing the slot meanwhile can
	// garble only its own result, never this process's memory.
	inPlace bool
	timer   *time.Timer
	tokens  *rand.ChaCha8
	lost    bool // a batch was given up without its reply: the pair stays busy until it comes
}

// NewShmLink holds a free slot pair of ep for a line to the worker at addr;
// ok is false when every pair is held, the worker is gone, or the codec
// has no index in proto.CodecNames. Close releases the pair.
func NewShmLink(ep *shm.Endpoint, codec proto.Codec, addr string) (_ *ShmLink, ok bool) {
	if z, ok := codec.(*proto.Compressed); ok {
		codec = z.Unwrap()
	}
	i := slices.Index(proto.CodecNames(), codec.Name())
	if i < 0 {
		return nil, false
	}
	pair, ok := ep.Acquire()
	if !ok {
		return nil, false
	}
	var seed [32]byte
	crand.Read(seed[:])
	l := &ShmLink{ep: ep, pair: pair, codec: codec, index: uint8(i), worker: addr, timer: time.NewTimer(time.Hour), tokens: rand.NewChaCha8(seed),
		inPlace: codec.Name() == proto.CodecPacked}
	l.timer.Stop()
	return l, true
}

// Codec is the codec the link encodes batches with.
func (l *ShmLink) Codec() proto.Codec { return l.codec }

// Close releases the slot pair.
func (l *ShmLink) Close() error {
	l.pair.Release(!l.lost)
	return nil
}

// RoundTrip is Link.RoundTrip over shared memory.
func (l *ShmLink) RoundTrip(ctx context.Context, b *proto.Batch, into *proto.Result, timeout time.Duration) (r Result, err error) {
	t0 := time.Now()
	_, _ = l.tokens.Read(b.Token[:]) // never fails
	slot := l.pair.Request()
	buf, err := l.codec.AppendBatch(slot, b)
	if errors.Is(err, proto.ErrLimit) {
		return r, fmt.Errorf("%v: %w", err, errTooLarge)
	}
	if err != nil {
		return r, err
	}
	size := l.pair.Geometry().SlotSize
	if len(buf) > size {
		return r, fmt.Errorf("batch of %d bytes over the %d-byte shared-memory slot: %w", len(buf), size, errTooLarge)
	}
	if len(buf) > 0 && &buf[0] != &slot[:1][0] { // the codec did not append in place
		copy(slot[:len(buf)], buf)
	}
	t1 := time.Now()
	d := shm.Desc{Codec: l.index, BatchID: b.ID, Attempt: b.Attempt, Token: b.Token, Length: uint32(len(buf))}
	if err := l.pair.Send(&d); err != nil {
		return r, fmt.Errorf("%v: %w", err, errGone)
	}
	l.timer.Reset(timeout)
	defer l.timer.Stop()
	res := into
	if res == nil {
		res = new(proto.Result)
	}
	var t2 time.Time
	for {
		d, err = l.pair.Wait(ctx, l.timer.C)
		switch {
		case errors.Is(err, shm.ErrGone):
			return r, fmt.Errorf("%w: %v", errLost, err)
		case errors.Is(err, shm.ErrTimeout):
			l.lost = true
			return r, fmt.Errorf("%w (%s)", errDeadline, timeout)
		case err != nil:
			l.lost = true
			return r, err
		}
		t2 = time.Now()
		if d.Token != b.Token || d.BatchID != b.ID || d.Attempt != b.Attempt {
			r.Forged++
			continue
		}
		src := l.pair.Bytes(d.Offset, d.Length)
		if d.Kind == shm.KindError {
			msg := string(src)
			if d.Code == 413 {
				return r, fmt.Errorf("%s: %w", msg, errTooLarge)
			}
			return r, fmt.Errorf("worker error %d: %s", d.Code, msg)
		}
		if !l.inPlace { // the worker's process can write the slot while this one decodes it
			l.buf = append(l.buf[:0], src...)
			src = l.buf
		}
		if l.codec.DecodeResult(src, res) != nil || res.Token != b.Token {
			r.Forged++
			continue
		}
		break
	}
	t3 := time.Now()
	r.Res, r.Worker, r.BytesOut, r.BytesIn = res, l.worker, len(buf), int(d.Length)
	r.Timing[StageEncode] = t1.Sub(t0)
	r.Timing[StageWorkerDecode], r.Timing[StageCompute], r.Timing[StageWorkerEncode], r.Timing[StagePipe] = d.Decode, d.Compute, d.Encode, d.Pipe
	r.Timing[StageTransport] = max(t2.Sub(t1)-r.Timing.Busy(), 1)
	r.Timing[StageDecode] = t3.Sub(t2)
	return r, nil
}
