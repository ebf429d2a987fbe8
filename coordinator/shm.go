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
// shmLink over shared memory.
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
		if ep := p.shm.Lookup(ctx, addrID(addr), shmLookupWait); ep != nil {
			if l, ok := newShmLink(ep, p.codec, addr); ok {
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

// addrID is the micro service ID of a worker address (<login>.<id>).
func addrID(addr string) string {
	_, id, _ := strings.Cut(addr, ".")
	return id
}

// shmLink is a lane's line to one worker over shared memory: it holds one
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
type shmLink struct {
	ep     *shm.Endpoint
	pair   *shm.Pair
	codec  proto.Codec // plain: shared memory is not worth compressing
	index  uint8       // the codec's index in proto.CodecNames
	worker string
	buf    []byte // the result, copied out of the slot before decoding
	timer  *time.Timer
	tokens *rand.ChaCha8
	lost   bool // a batch was given up without its reply: the pair stays busy until it comes
}

func newShmLink(ep *shm.Endpoint, codec proto.Codec, addr string) (*shmLink, bool) {
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
	l := &shmLink{ep: ep, pair: pair, codec: codec, index: uint8(i), worker: addr, timer: time.NewTimer(time.Hour), tokens: rand.NewChaCha8(seed)}
	l.timer.Stop()
	return l, true
}

// Close releases the slot pair.
func (l *shmLink) Close() error {
	l.pair.Release(!l.lost)
	return nil
}

// RoundTrip is Link.RoundTrip over shared memory.
func (l *shmLink) RoundTrip(ctx context.Context, b *proto.Batch, into *proto.Result, timeout time.Duration) (r Result, err error) {
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
		// Copied out first: the worker's process can write the slot while
		// this one decodes it, and the decoder must see fixed bytes.
		l.buf = append(l.buf[:0], l.pair.Bytes(d.Offset, d.Length)...)
		if d.Kind == shm.KindError {
			msg := string(l.buf)
			if d.Code == 413 {
				return r, fmt.Errorf("%s: %w", msg, errTooLarge)
			}
			return r, fmt.Errorf("worker error %d: %s", d.Code, msg)
		}
		if l.codec.DecodeResult(l.buf, res) != nil || res.Token != b.Token {
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
