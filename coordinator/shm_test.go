//go:build linux

package coordinator

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/shm"
	"github.com/ferrylab/ferry/sink"
	"github.com/ferrylab/ferry/worker"
	"golang.org/x/sys/unix"
)

// shmEnds makes a region and socket pair: the coordinator's endpoint
// (served until cleanup) and the worker's files.
func shmEnds(t *testing.T, g shm.Geometry) (ep *shm.Endpoint, memfd, sock *os.File) {
	t.Helper()
	region, err := shm.NewRegion(g)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(int(region.File().Fd()))
	if err != nil {
		t.Fatal(err)
	}
	parent, child, err := shm.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := shm.NewConn(parent)
	if err != nil {
		t.Fatal(err)
	}
	return shm.NewEndpoint(region, conn), os.NewFile(uintptr(fd), "memfd"), child
}

// startShmWorker runs a real worker in this process with a shared-memory
// plane registered in reg, and returns its address.
func startShmWorker(t *testing.T, url string, reg *shm.Registry) string {
	t.Helper()
	g := shm.Geometry{Pairs: 2, SlotSize: 1 << 20}
	ep, memfd, sock := shmEnds(t, g)
	reg.Pending(1)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_, err := ep.Hello(10 * time.Second)
		reg.Pending(-1)
		if err == nil && reg.Add(ep) {
			defer reg.Remove(ep)
		} else {
			ep.Close()
		}
		ep.Serve()
	}()
	w, err := worker.New(worker.Config{URL: url, Shm: &worker.ShmConfig{Region: memfd, Socket: sock, Geometry: g}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; ep.Close(); <-served })
	nc := natstest.Connect(t, url)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if ids, _ := Discover(ctx, nc, 100*time.Millisecond, 1); len(ids) > 0 {
			return ids[0]
		}
		if time.Now().After(deadline) {
			t.Fatal("worker did not answer discovery")
		}
	}
}

// TestShmIdenticalResults: the same job over NATS and over shared memory,
// on the same worker, gives bit-identical results, and the report's
// planes say which carried the batches.
func TestShmIdenticalResults(t *testing.T) {
	_, url := natstest.NewServer(t)
	reg := shm.NewRegistry()
	addr := startShmWorker(t, url, reg)
	nc := natstest.Connect(t, url)
	docs := make([]string, 700)
	for i := range docs {
		docs[i] = strings.Repeat("word ", i%50+1)
	}
	for _, codec := range proto.CodecNames() {
		t.Run(codec, func(t *testing.T) {
			cfg := Config{Workload: "embed", BatchSize: 33, Workers: 1, Codec: codec}
			var digests []string
			for _, plane := range []string{PlaneNATS, PlaneShm} {
				bc := BackendConfig{Mode: ModeProcesses, Job: cfg, Conn: nc, Expect: 1}
				if plane == PlaneShm {
					bc.Shm = reg
				}
				b, err := NewBackend(bc)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				st, err := Run(ctx, cfg, corpus.Slice(docs), b, sink.Discard{})
				cancel()
				if err != nil {
					t.Fatalf("%s: %v", plane, err)
				}
				if got, want := st.Docs, int64(len(docs)); got != want {
					t.Errorf("%s: docs %d, want %d", plane, got, want)
				}
				if got := st.Planes[addr]; got != plane {
					t.Errorf("%s: worker's plane = %q (planes %v)", plane, got, st.Planes)
				}
				if want := map[string]string{PlaneNATS: ModeProcesses, PlaneShm: "processes/shm"}[plane]; st.Mode != want {
					t.Errorf("mode = %q, want %q", st.Mode, want)
				}
				digests = append(digests, st.Digest)
			}
			if digests[0] != digests[1] {
				t.Errorf("digest over shm %s differs from NATS's %s", digests[1], digests[0])
			}
		})
	}
}

// hostileEnd is the worker's end of an endpoint played by the test.
type hostileEnd struct {
	t    *testing.T
	sock *os.File
	mem  *shm.Region
}

func newHostile(t *testing.T, g shm.Geometry) (*shm.Endpoint, *hostileEnd) {
	ep, memfd, sock := shmEnds(t, g)
	mem, err := shm.OpenRegion(memfd, g)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); ep.Serve() }()
	t.Cleanup(func() { ep.Close(); sock.Close(); <-served; mem.Unmap() })
	return ep, &hostileEnd{t: t, sock: sock, mem: mem}
}

func (h *hostileEnd) recv() shm.Desc {
	buf := make([]byte, shm.MaxPacket)
	n, err := h.sock.Read(buf)
	if err != nil {
		h.t.Error(err)
		return shm.Desc{}
	}
	var d shm.Desc
	if err := shm.Parse(buf[:n], &d); err != nil {
		h.t.Error(err)
	}
	return d
}

func (h *hostileEnd) send(p []byte) {
	if _, err := h.sock.Write(p); err != nil {
		h.t.Error(err)
	}
}

// TestShmLinkForgedReplies: a worker end that answers a batch with
// forgeries (garbage, another batch's ID, a wrong token, a slot outside
// the region, a result that does not decode) costs counted drops; the
// real reply that follows is taken.
func TestShmLinkForgedReplies(t *testing.T) {
	g := shm.Geometry{Pairs: 1, SlotSize: 1 << 16}
	ep, h := newHostile(t, g)
	l, ok := NewShmLink(ep, packedCodec(t), "w.1")
	if !ok {
		t.Fatal("no pair")
	}
	defer l.Close()
	codec := packedCodec(t)
	go func() {
		d := h.recv()
		var b proto.Batch
		if err := codec.DecodeBatch(h.mem.Bytes(d.Offset, d.Length), &b); err != nil {
			t.Error(err)
			return
		}
		res := h.mem.Result(0)
		reply := func(mod func(*shm.Desc)) []byte {
			r := shm.Desc{Kind: shm.KindResult, Pair: 0, Offset: g.ResultOffset(0), BatchID: b.ID, Attempt: b.Attempt, Token: b.Token}
			mod(&r)
			return r.Append(nil)
		}
		h.send([]byte("not a descriptor"))
		h.send(reply(func(r *shm.Desc) { r.BatchID++ }))
		h.send(reply(func(r *shm.Desc) { r.Token[0] ^= 1 }))
		h.send(reply(func(r *shm.Desc) { r.Offset = 1 << 40 }))
		copy(res[:4], "junk")
		h.send(reply(func(r *shm.Desc) { r.Length = 4 })) // right token, undecodable result
		out, _ := codec.AppendResult(res, &proto.Result{BatchID: b.ID, Attempt: b.Attempt, Token: b.Token})
		h.send(reply(func(r *shm.Desc) { r.Length, r.Compute = uint32(len(out)), time.Millisecond }))
	}()
	b := proto.Batch{ID: 7, Attempt: 1, Workload: "embed", Docs: []string{"a", "b"}}
	r, err := l.RoundTrip(context.Background(), &b, nil, 10*time.Second)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	if r.Res.BatchID != 7 || r.Res.Token != b.Token {
		t.Errorf("result %+v is not batch 7's", r.Res)
	}
	if got := int64(r.Forged) + ep.Forged(); got != 5 {
		t.Errorf("forged = %d by the link + %d by the endpoint, want 5 in all", r.Forged, ep.Forged())
	}
	if r.Timing[StageCompute] != time.Millisecond {
		t.Errorf("compute stage %s, want the reply's 1ms", r.Timing[StageCompute])
	}
}

// TestShmLinkWorkerDies: a worker end that closes with the batch in it
// fails the round trip at once with errLost (retried, then bisected), not
// at the deadline; a send to a gone worker is errGone (requeued).
func TestShmLinkWorkerDies(t *testing.T) {
	g := shm.Geometry{Pairs: 2, SlotSize: 1 << 16}
	ep, h := newHostile(t, g)
	l, _ := NewShmLink(ep, packedCodec(t), "w.1")
	defer l.Close()
	go func() { h.recv(); h.sock.Close() }()
	b := proto.Batch{ID: 1, Attempt: 1, Workload: "embed", Docs: []string{"a"}}
	start := time.Now()
	if _, err := l.RoundTrip(context.Background(), &b, nil, time.Hour); !errors.Is(err, errLost) {
		t.Fatalf("RoundTrip = %v, want errLost", err)
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("took %s: waited for the deadline", d)
	}
	if _, err := l.RoundTrip(context.Background(), &b, nil, time.Hour); !errors.Is(err, errGone) && !errors.Is(err, errLost) {
		t.Errorf("second RoundTrip = %v, want errGone", err)
	}
}

// TestShmLinkDeadlineAndTooLarge: no reply by the deadline is errDeadline;
// a batch over the slot is errTooLarge (split), never sent.
func TestShmLinkDeadlineAndTooLarge(t *testing.T) {
	g := shm.Geometry{Pairs: 1, SlotSize: 4096}
	ep, _ := newHostile(t, g)
	l, _ := NewShmLink(ep, packedCodec(t), "w.1")
	defer l.Close()
	big := proto.Batch{ID: 1, Attempt: 1, Workload: "embed", Docs: []string{strings.Repeat("x", 5000)}}
	if _, err := l.RoundTrip(context.Background(), &big, nil, time.Second); !errors.Is(err, errTooLarge) {
		t.Errorf("RoundTrip of a batch over the slot = %v, want errTooLarge", err)
	}
	b := proto.Batch{ID: 2, Attempt: 1, Workload: "embed", Docs: []string{"a"}}
	if _, err := l.RoundTrip(context.Background(), &b, nil, 50*time.Millisecond); !errors.Is(err, errDeadline) {
		t.Errorf("RoundTrip with no reply = %v, want errDeadline", err)
	}
}
