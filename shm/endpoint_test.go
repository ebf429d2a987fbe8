//go:build linux

package shm

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/ferrylab/ferry/internal/poll"
	"golang.org/x/sys/unix"
)

// pairOfEnds is an endpoint and the raw worker end of its socket.
func pairOfEnds(t *testing.T, g Geometry) (*Endpoint, *os.File) {
	t.Helper()
	region, err := NewRegion(g)
	if err != nil {
		t.Fatal(err)
	}
	parent, child, err := Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := NewConn(parent)
	if err != nil {
		t.Fatal(err)
	}
	ep := NewEndpoint(region, conn)
	served := make(chan struct{})
	go func() { defer close(served); ep.Serve() }()
	t.Cleanup(func() { ep.Close(); child.Close(); <-served })
	return ep, child
}

func send(t *testing.T, f *os.File, p []byte) {
	t.Helper()
	if _, err := f.Write(p); err != nil {
		t.Fatal(err)
	}
}

// TestEndpointHostileWorker: a worker end writing garbage, descriptors
// for slots outside the region, for pairs not in use, and floods costs
// counted drops; the holder of a pair still gets its real reply.
func TestEndpointHostileWorker(t *testing.T) {
	g := Geometry{Pairs: 2, SlotSize: 4096}
	ep, w := pairOfEnds(t, g)
	p, ok := ep.Acquire()
	if !ok {
		t.Fatal("no pair")
	}
	defer p.Release(true)
	hostile := [][]byte{
		[]byte("garbage"),
		make([]byte, MaxPacket+100), // over the largest datagram: truncated, dropped
		(&Desc{Kind: KindResult, Pair: 7, Offset: 7 * 8192}).Append(nil),                     // no such pair
		(&Desc{Kind: KindResult, Pair: 0, Offset: 0, Length: 10}).Append(nil),                // the request slot
		(&Desc{Kind: KindResult, Pair: 0, Offset: 4096, Length: 5000}).Append(nil),           // over the slot
		(&Desc{Kind: KindResult, Pair: 1, Offset: g.ResultOffset(1), Length: 1}).Append(nil), // pair not held
		(&Desc{Kind: KindBatch, Pair: 0, Offset: 0}).Append(nil),                             // wrong direction
		(&Desc{Kind: KindHello, ID: "again"}).Append(nil),
	}
	for _, h := range hostile {
		send(t, w, h)
	}
	real := Desc{Kind: KindResult, Pair: 0, Offset: g.ResultOffset(0), Length: 3, BatchID: 42}
	send(t, w, real.Append(nil))
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	d, err := p.Wait(context.Background(), timer.C)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if d.BatchID != 42 {
		t.Errorf("reply batch %d, want 42", d.BatchID)
	}
	if got, want := ep.Forged(), int64(len(hostile)); got != want {
		t.Errorf("forged = %d, want %d", got, want)
	}
}

// TestEndpointWorkerDies: the worker's end closing wakes a waiting holder
// with ErrGone, at once, not at its deadline.
func TestEndpointWorkerDies(t *testing.T) {
	ep, w := pairOfEnds(t, Geometry{Pairs: 1, SlotSize: 4096})
	p, _ := ep.Acquire()
	defer p.Release(true)
	w.Close()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	if _, err := p.Wait(context.Background(), timer.C); !errors.Is(err, ErrGone) {
		t.Fatalf("Wait = %v, want ErrGone", err)
	}
	if _, ok := ep.Acquire(); ok {
		t.Error("Acquire on a gone endpoint succeeded")
	}
}

// TestEndpointAbandonedPair: a pair given up at its deadline stays busy
// (the worker may still write its result slot) until the late reply
// comes, then is free again. Memory stays bounded: no more pairs than the
// region has.
func TestEndpointAbandonedPair(t *testing.T) {
	g := Geometry{Pairs: 1, SlotSize: 4096}
	ep, w := pairOfEnds(t, g)
	p, ok := ep.Acquire()
	if !ok {
		t.Fatal("no pair")
	}
	if _, ok := ep.Acquire(); ok {
		t.Fatal("a second pair from a one-pair region")
	}
	fired := make(chan time.Time, 1)
	fired <- time.Now()
	if _, err := p.Wait(context.Background(), fired); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Wait = %v, want ErrTimeout", err)
	}
	p.Release(false)
	if _, ok := ep.Acquire(); ok {
		t.Fatal("an abandoned pair was handed out before its late reply")
	}
	send(t, w, (&Desc{Kind: KindResult, Pair: 0, Offset: g.ResultOffset(0)}).Append(nil))
	poll.WaitFor(t, 10*time.Second, "the late reply to free the pair", func() bool {
		q, ok := ep.Acquire()
		if ok {
			q.Release(true)
		}
		return ok
	})
}

// TestRegionSealed: the worker's side refuses a region of the wrong size,
// and nobody can shrink a region under the other's mapping.
func TestRegionSealed(t *testing.T) {
	g := Geometry{Pairs: 1, SlotSize: 4096}
	r, err := NewRegion(g)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Unmap()
	if err := unix.Ftruncate(int(r.File().Fd()), 0); err == nil {
		t.Error("shrinking the region succeeded")
	}
	if _, err := OpenRegion(r.File(), Geometry{Pairs: 2, SlotSize: 4096}); err == nil {
		t.Error("OpenRegion with a larger geometry succeeded")
	}
}

// TestEndpointBye: a worker that says bye gets the ack, and no batch is
// sent after it (a send is ErrGone: requeued, not retried); its replies
// to batches sent before still reach their pairs.
func TestEndpointBye(t *testing.T) {
	g := Geometry{Pairs: 1, SlotSize: 4096}
	ep, w := pairOfEnds(t, g)
	p, _ := ep.Acquire()
	defer p.Release(true)
	if err := p.Send(&Desc{BatchID: 1}); err != nil {
		t.Fatal(err)
	}
	send(t, w, (&Desc{Kind: KindBye}).Append(nil))
	buf := make([]byte, MaxPacket)
	var kinds []Kind
	for len(kinds) < 2 {
		n, err := w.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		var d Desc
		if err := Parse(buf[:n], &d); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, d.Kind)
	}
	if kinds[0] != KindBatch || kinds[1] != KindByeAck {
		t.Fatalf("worker read kinds %v, want the batch then the ack", kinds)
	}
	if err := p.Send(&Desc{BatchID: 2}); !errors.Is(err, ErrGone) {
		t.Errorf("Send after bye = %v, want ErrGone", err)
	}
	send(t, w, (&Desc{Kind: KindResult, Pair: 0, Offset: g.ResultOffset(0), BatchID: 1}).Append(nil))
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	if d, err := p.Wait(context.Background(), timer.C); err != nil || d.BatchID != 1 {
		t.Errorf("Wait = %+v, %v; want batch 1's reply", d, err)
	}
}
