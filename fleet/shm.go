package fleet

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/ferrylab/ferry/shm"
	"github.com/ferrylab/ferry/worker"
)

// ShmPairs is how many slot pairs a worker's region has when
// Config.ShmPairs is 0: the coordinator's default in-flight batches per
// worker. A lane that finds every pair held sends over NATS.
const ShmPairs = 2

// helloWait bounds the wait for a worker's hello on its socket.
const helloWait = 30 * time.Second

// shmPlane is the fleet's side of its workers' shared memory: for each
// worker process started (restarts too), a new memfd region and socket
// pair, passed as inherited files; the worker's hello registers it under
// its micro service ID. A worker that exits, however, takes its region
// with it: the coordinator's end sees EOF, unregisters, and unmaps once
// no lane holds a pair.
type shmPlane struct {
	geo shm.Geometry
	reg *shm.Registry
	wg  sync.WaitGroup

	mu     sync.Mutex
	eps    map[*shm.Endpoint]bool
	closed bool
}

func newShmPlane(cfg Config) (*shmPlane, error) {
	g := shm.Geometry{Pairs: cfg.ShmPairs, SlotSize: cfg.MaxPayload}
	if g.Pairs == 0 {
		g.Pairs = ShmPairs
	}
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return &shmPlane{geo: g, reg: shm.NewRegistry(), eps: map[*shm.Endpoint]bool{}}, nil
}

// files is spawn.Config.Files: one worker start's region and socket.
func (s *shmPlane) files() ([]*os.File, []string, error) {
	region, err := shm.NewRegion(s.geo)
	if err != nil {
		return nil, nil, err
	}
	parent, child, err := shm.Socketpair()
	if err != nil {
		region.Unmap()
		return nil, nil, err
	}
	conn, err := shm.NewConn(parent)
	if err != nil {
		child.Close()
		region.Unmap()
		return nil, nil, err
	}
	memfd := region.File() // the pool closes it once the child has it; the mapping stays
	ep := shm.NewEndpoint(region, conn)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ep.Close()
		ep.Serve() // returns at once: unmaps
		child.Close()
		return nil, nil, fmt.Errorf("fleet: closed")
	}
	s.eps[ep] = true
	s.mu.Unlock()
	s.reg.Pending(1)
	s.wg.Go(func() { s.serve(ep) })
	env := fmt.Sprintf("%s=3,4,%d,%d", worker.EnvShm, s.geo.Pairs, s.geo.SlotSize)
	return []*os.File{memfd, child}, []string{env}, nil
}

// serve waits for ep's hello, registers it, and serves it until its
// worker is gone.
func (s *shmPlane) serve(ep *shm.Endpoint) {
	defer func() {
		s.mu.Lock()
		delete(s.eps, ep)
		s.mu.Unlock()
	}()
	_, err := ep.Hello(helloWait)
	if err != nil || !s.reg.Add(ep) {
		s.reg.Pending(-1)
		ep.Close()
		ep.Serve() // returns at once: unmaps
		return
	}
	s.reg.Pending(-1)
	ep.Serve()
	s.reg.Remove(ep)
}

// close ends every endpoint and waits for their goroutines.
func (s *shmPlane) close() {
	s.mu.Lock()
	s.closed = true
	for ep := range s.eps {
		ep.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
