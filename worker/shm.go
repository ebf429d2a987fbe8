package worker

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/shm"
)

// EnvShm names the inherited shared-memory data plane of a worker started
// by a local fleet: "<region fd>,<socket fd>,<pairs>,<slot bytes>". The
// fleet sets it; it is not a config key.
const EnvShm = "FERRY_SHM"

// ShmConfig is a worker's shared-memory data plane: the memfd region and
// the descriptor socket the fleet passed, and the region's shape.
type ShmConfig struct {
	Region, Socket *os.File
	Geometry       shm.Geometry
}

// ShmFromEnv reads EnvShm; nil when it is unset.
func ShmFromEnv() (*ShmConfig, error) {
	v := os.Getenv(EnvShm)
	if v == "" {
		return nil, nil
	}
	f := strings.Split(v, ",")
	if len(f) != 4 {
		return nil, fmt.Errorf("worker: %s=%q: want <region fd>,<socket fd>,<pairs>,<slot bytes>", EnvShm, v)
	}
	var n [4]int
	for i, s := range f {
		x, err := strconv.Atoi(s)
		if err != nil || x < 0 {
			return nil, fmt.Errorf("worker: %s=%q: %q is not a count", EnvShm, v, s)
		}
		n[i] = x
	}
	if n[0] < 3 || n[1] < 3 || n[0] == n[1] {
		return nil, fmt.Errorf("worker: %s=%q: bad descriptors", EnvShm, v)
	}
	// The variable may have leaked to a process that was not handed the
	// files (a `ferry worker --procs N` child, a user's shell): then these
	// numbers are some other file of ours, which must not be touched.
	for i, want := range []uint32{syscall.S_IFREG, syscall.S_IFSOCK} {
		var st syscall.Stat_t
		if err := syscall.Fstat(n[i], &st); err != nil || uint32(st.Mode)&syscall.S_IFMT != want {
			return nil, fmt.Errorf("worker: %s=%q: descriptor %d is not the region and socket a fleet passes; unset %s", EnvShm, v, n[i], EnvShm)
		}
	}
	// Ours alone: not inherited by an exec workload's program, which would
	// keep the socket open after this worker died and hide its death.
	syscall.CloseOnExec(n[0])
	syscall.CloseOnExec(n[1])
	os.Unsetenv(EnvShm)
	return &ShmConfig{
		Region:   os.NewFile(uintptr(n[0]), "ferry-shm"),
		Socket:   os.NewFile(uintptr(n[1]), "ferry-shm-sock"),
		Geometry: shm.Geometry{Pairs: n[2], SlotSize: n[3]},
	}, nil
}

// drainWait bounds how long a stopping worker waits for the coordinator's
// ack of its bye.
const drainWait = 10 * time.Second

// shmPlane is the worker's end of its shared memory.
type shmPlane struct {
	region *shm.Region
	conn   *shm.Conn
	sendMu sync.Mutex // replies and the bye
	done   chan struct{}
}

// openShm maps the region, wraps the socket and says hello with the
// worker's micro service ID, so the coordinator can tell which worker
// this line reaches.
func (w *Worker) openShm(id string) (*shmPlane, error) {
	c := w.cfg.Shm
	region, err := shm.OpenRegion(c.Region, c.Geometry)
	if err != nil {
		c.Region.Close()
		c.Socket.Close()
		return nil, err
	}
	region.CloseFile() // the mapping holds the memory
	conn, err := shm.NewConn(c.Socket)
	if err != nil {
		region.Unmap()
		return nil, err
	}
	if err := conn.Send(&shm.Desc{Kind: shm.KindHello, ID: id}); err != nil {
		conn.Close()
		region.Unmap()
		return nil, fmt.Errorf("shm hello: %w", err)
	}
	return &shmPlane{region: region, conn: conn, done: make(chan struct{})}, nil
}

// serveShm computes the batches the coordinator announces on the socket,
// one at a time (under w.mu, as NATS batches are), until the socket ends
// or stop sets its deadline. A descriptor that does not parse or names a
// slot outside the region is logged and skipped.
func (w *Worker) serveShm(p *shmPlane) {
	defer close(p.done)
	var d shm.Desc
	names := proto.CodecNames()
	for {
		err := p.conn.Recv(&d)
		if errors.Is(err, shm.ErrDescriptor) {
			w.log.Warn("shm: dropped a descriptor", "err", err)
			continue
		}
		if err != nil {
			return
		}
		if d.Kind == shm.KindByeAck { // every batch sent before it is answered
			return
		}
		if d.Kind != shm.KindBatch || p.region.Check(&d) != nil {
			w.log.Warn("shm: dropped a descriptor", "kind", d.Kind, "pair", d.Pair, "offset", d.Offset, "length", d.Length)
			continue
		}
		reply := w.shmBatch(p, &d, names)
		p.sendMu.Lock()
		err = p.conn.Send(&reply)
		p.sendMu.Unlock()
		if err != nil {
			w.log.Warn("shm reply", "batch", d.BatchID, "err", err)
			return
		}
	}
}

// shmBatch serves the batch of d and returns the reply's descriptor.
func (w *Worker) shmBatch(p *shmPlane, d *shm.Desc, names []string) shm.Desc {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ev Event
	if obs := w.cfg.Observe; obs != nil {
		obs(Event{Start: true})
		defer func() { obs(ev) }()
	}
	slot := p.region.Result(d.Pair)
	reply := shm.Desc{Kind: shm.KindResult, Pair: d.Pair, Offset: p.region.ResultOffset(d.Pair), BatchID: d.BatchID, Attempt: d.Attempt}
	fail := func(code, msg string) shm.Desc {
		ev.Code = code
		c, _ := strconv.Atoi(code)
		n := copy(slot[:cap(slot)], msg)
		reply.Kind, reply.Code, reply.Length, reply.Token = shm.KindError, uint16(c), uint32(n), w.b.Token
		return reply
	}
	w.b.Token = proto.Token{}
	if int(d.Codec) >= len(names) {
		return fail("400", fmt.Sprintf("unknown codec %d", d.Codec))
	}
	sv := w.runBatch(w.codecs[names[d.Codec]], p.region.Bytes(d.Offset, d.Length), slot, int64(p.region.SlotSize))
	defer func() { w.b.Docs = w.b.Docs[:0] }() // drop references into the region
	if sv.code != "" {
		return fail(sv.code, sv.msg)
	}
	out := sv.out
	if len(out) > p.region.SlotSize {
		return fail("413", fmt.Sprintf("result of %d bytes for %d documents is over the %d-byte shared-memory slot; use smaller batches", len(out), len(w.b.Docs), p.region.SlotSize))
	}
	if len(out) > 0 && &out[0] != &slot[:1][0] { // the codec did not append in place
		copy(slot[:len(out)], out)
	}
	ev = sv.event(len(w.b.Docs), len(w.res.Errs))
	reply.Length, reply.Token = uint32(len(out)), w.res.Token
	reply.Decode, reply.Compute, reply.Encode, reply.Pipe = sv.decode, sv.compute, sv.encode, sv.pipe
	return reply
}

// stop drains the plane: it says bye, so the coordinator sends no more;
// serveShm answers every batch sent before the coordinator's ack, then
// ends (or at drainWait, whatever is left is the coordinator's to retry).
// Then it closes the socket and unmaps the region.
func (p *shmPlane) stop() {
	p.sendMu.Lock()
	err := p.conn.Send(&shm.Desc{Kind: shm.KindBye})
	p.sendMu.Unlock()
	if err != nil {
		p.conn.SetReadDeadline(time.Now())
	} else {
		p.conn.SetReadDeadline(time.Now().Add(drainWait))
	}
	<-p.done
	p.conn.Close()
	p.region.Unmap()
}
