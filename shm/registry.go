package shm

import (
	"context"
	"sync"
	"time"
)

// Registry maps workers' micro service IDs to their endpoints: the fleet
// adds an endpoint when the worker's hello names it, and removes it when
// the worker is gone; the coordinator looks workers up by ID. A worker
// not in it is served over NATS.
type Registry struct {
	mu      sync.Mutex
	eps     map[string]*Endpoint
	pending int           // endpoints started whose hello has not come
	changed chan struct{} // closed and replaced on every change
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{eps: map[string]*Endpoint{}, changed: make(chan struct{})}
}

func (r *Registry) changedLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// Pending notes an endpoint whose hello is awaited; Lookup waits for it.
func (r *Registry) Pending(delta int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending += delta
	r.changedLocked()
}

// Add registers e under its hello's ID, replacing no other: a second
// endpoint claiming a live ID is refused (false).
func (r *Registry) Add(e *Endpoint) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.eps[e.ID()]; dup {
		return false
	}
	r.eps[e.ID()] = e
	r.changedLocked()
	return true
}

// Remove unregisters e.
func (r *Registry) Remove(e *Endpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.eps[e.ID()] == e {
		delete(r.eps, e.ID())
		r.changedLocked()
	}
}

// Lookup returns the endpoint of worker id, waiting up to wait while some
// hello is still pending (a worker can be discovered over NATS a moment
// before its hello is read); nil when it has none.
func (r *Registry) Lookup(ctx context.Context, id string, wait time.Duration) *Endpoint {
	if r == nil {
		return nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		r.mu.Lock()
		e, pending, changed := r.eps[id], r.pending, r.changed
		r.mu.Unlock()
		if e != nil || pending == 0 {
			return e
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// Len is the number of registered endpoints.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.eps)
}
