package shm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrGone is returned when the worker's end of an Endpoint is closed: the
// worker exited, was killed, or sent something that ended the line.
var ErrGone = errors.New("shm: worker gone")

// Endpoint is the coordinator's end of one worker's shared memory: the
// region, the descriptor socket, and which pairs are in use. Serve reads
// the worker's descriptors and hands each to the pair it names; a lane
// holds one Pair at a time (Acquire).
type Endpoint struct {
	region *Region
	conn   *Conn
	id     string // the worker's micro service ID, from its hello

	sendMu   sync.Mutex // one datagram at a time on conn
	stopping bool       // the worker said bye: nothing more is sent (under sendMu)
	mu       sync.Mutex
	pairs    []pairState
	refs     int  // pairs held, plus Serve
	closed   bool // Close was called or Serve ended
	gone     chan struct{}
	// Forged counts datagrams that did not parse or named no pair in use.
	forged atomic.Int64
}

type pairState struct {
	held      bool
	abandoned bool // its holder gave up waiting; the pair is busy until its reply comes
	replies   chan Desc
}

// NewEndpoint returns the endpoint of region and conn; it owns both, and
// Serve must be called (once), even after Close, to release them.
func NewEndpoint(region *Region, conn *Conn) *Endpoint {
	// One reference is Serve's, taken here: a pair released before Serve
	// starts must not find zero and unmap the region.
	e := &Endpoint{region: region, conn: conn, gone: make(chan struct{}), pairs: make([]pairState, region.Pairs), refs: 1}
	for i := range e.pairs {
		e.pairs[i].replies = make(chan Desc, 4)
	}
	return e
}

// Hello reads the worker's first datagram, which must be a hello, within
// timeout, and returns the worker's micro service ID.
func (e *Endpoint) Hello(timeout time.Duration) (string, error) {
	var d Desc
	e.conn.SetReadDeadline(time.Now().Add(timeout))
	defer e.conn.SetReadDeadline(time.Time{})
	if err := e.conn.Recv(&d); err != nil {
		return "", fmt.Errorf("shm: hello: %w", err)
	}
	if d.Kind != KindHello {
		return "", fmt.Errorf("%w: first datagram is kind %d, not a hello", ErrDescriptor, d.Kind)
	}
	e.id = d.ID
	return d.ID, nil
}

// ID is the worker's ID from its hello.
func (e *Endpoint) ID() string { return e.id }

// Region is the endpoint's region.
func (e *Endpoint) Region() *Region { return e.region }

// Gone is closed when the worker's end is gone.
func (e *Endpoint) Gone() <-chan struct{} { return e.gone }

// Forged is the number of datagrams dropped so far for not parsing or
// naming no pair in use.
func (e *Endpoint) Forged() int64 { return e.forged.Load() }

// Serve reads the worker's descriptors until its end closes, handing
// results and errors to their pairs. A datagram that does not parse,
// names no pair in use, or floods a pair is dropped and counted. When it
// returns, Gone is closed, and the region is unmapped once no pair is held.
func (e *Endpoint) Serve() {
	defer func() {
		e.conn.Close()
		close(e.gone)
		e.release()
	}()
	var d Desc
	for {
		err := e.conn.Recv(&d)
		if errors.Is(err, ErrDescriptor) {
			e.forged.Add(1)
			continue
		}
		if err != nil {
			return
		}
		if d.Kind == KindBye { // the worker drains: batches already sent are answered, no new ones go
			e.sendMu.Lock()
			if !e.stopping {
				e.stopping = true
				e.conn.Send(&Desc{Kind: KindByeAck})
			}
			e.sendMu.Unlock()
			continue
		}
		if (d.Kind != KindResult && d.Kind != KindError) || e.region.Check(&d) != nil {
			e.forged.Add(1)
			continue
		}
		e.mu.Lock()
		p := &e.pairs[d.Pair]
		switch {
		case p.abandoned: // the late reply of a batch given up: the pair is free again
			p.abandoned, p.held = false, false
		case !p.held:
			e.forged.Add(1)
		default:
			select {
			case p.replies <- d:
			default:
				e.forged.Add(1) // a flood: the holder reads one reply at a time
			}
		}
		e.mu.Unlock()
	}
}

// Close closes the socket (Serve returns); the region is unmapped when
// the last pair is released.
func (e *Endpoint) Close() { e.conn.Close() }

func (e *Endpoint) release() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.refs--
	if e.refs == 0 {
		e.closed = true
		e.region.Unmap()
	}
}

// Acquire holds a free pair; ok is false when every pair is held or the
// worker is gone.
func (e *Endpoint) Acquire() (p *Pair, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, false
	}
	select {
	case <-e.gone:
		return nil, false
	default:
	}
	for i := range e.pairs {
		if s := &e.pairs[i]; !s.held {
			s.held = true
			for len(s.replies) > 0 {
				<-s.replies
			}
			e.refs++
			return &Pair{e: e, i: uint32(i)}, true
		}
	}
	return nil, false
}

// Pair is one held request/result slot pair.
type Pair struct {
	e *Endpoint
	i uint32
}

// Index is the pair's number, as descriptors name it.
func (p *Pair) Index() uint32 { return p.i }

// Request is the pair's request slot, empty, with the slot's capacity: a
// codec appends the batch to it.
func (p *Pair) Request() []byte { return p.e.region.Request(p.i) }

// Geometry is the region's shape.
func (p *Pair) Geometry() Geometry { return p.e.region.Geometry }

// Bytes is the region's [off, off+n) of a descriptor Check allowed.
func (p *Pair) Bytes(off uint64, n uint32) []byte { return p.e.region.Bytes(off, n) }

// Send sends a batch descriptor for this pair; it sets Kind, Pair and
// Offset. An error means the worker is gone and never saw it.
func (p *Pair) Send(d *Desc) error {
	d.Kind, d.Pair, d.Offset = KindBatch, p.i, p.e.region.RequestOffset(p.i)
	p.e.sendMu.Lock()
	defer p.e.sendMu.Unlock()
	if p.e.stopping {
		return fmt.Errorf("%w: it is stopping", ErrGone)
	}
	if err := p.e.conn.Send(d); err != nil {
		return fmt.Errorf("%w: %v", ErrGone, err)
	}
	return nil
}

// Wait returns the next reply naming this pair, or an error: ErrGone when
// the worker's end closed, ctx's error, or errTimeout on the timer.
func (p *Pair) Wait(ctx context.Context, timer <-chan time.Time) (Desc, error) {
	s := &p.e.pairs[p.i]
	select {
	case d := <-s.replies:
		return d, nil
	default:
	}
	select {
	case d := <-s.replies:
		return d, nil
	case <-p.e.gone:
		select { // a reply that came just before the end still counts
		case d := <-s.replies:
			return d, nil
		default:
		}
		return Desc{}, ErrGone
	case <-timer:
		return Desc{}, ErrTimeout
	case <-ctx.Done():
		return Desc{}, ctx.Err()
	}
}

// ErrTimeout is Wait's error when the timer fires.
var ErrTimeout = errors.New("shm: no reply in time")

// Release frees the pair after its reply came (done true), or marks it
// busy until the worker's late reply comes (done false: the holder gave up
// waiting, and the worker may still write the result slot).
func (p *Pair) Release(done bool) {
	e := p.e
	e.mu.Lock()
	s := &e.pairs[p.i]
	if done {
		s.held = false
	} else {
		s.abandoned = true
	}
	e.mu.Unlock()
	e.release()
}
