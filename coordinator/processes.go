package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/shm"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// ErrNoWorkers is returned when no worker answers within Config.WorkerWait.
var ErrNoWorkers = errors.New("coordinator: no workers")

// Processes sends batches over NATS to ferry-worker processes.
//
// Dispatch is credit-based: the backend discovers workers through the micro
// service's $SRV.INFO and runs InFlight lanes per worker, each sending one
// batch to that worker's own subject and waiting for the reply before it
// takes the next. A worker is therefore never sent more than InFlight
// batches, an idle worker always has its next batch waiting, and no worker
// builds a backlog while another idles, which a queue group's random pick
// cannot promise.
type Processes struct {
	nc     *nats.Conn
	codec  proto.Codec
	cfg    Config
	expect int
	log    *slog.Logger

	ready []string // workers found by Ready

	shm *shm.Registry // workers' shared-memory endpoints; nil = NATS only

	mu     sync.Mutex
	live   map[string]*attached // workers with running lanes, by ID
	seen   atomic.Int64         // most workers attached at once
	planes map[string]string    // each worker's data plane (notePlane)
}

// attached is one worker's lanes. A worker that stops answering discovery
// for missLimit rounds is given up: its idle lanes return (a lane in the
// middle of a batch still waits for the reply or the deadline, so a worker
// draining on SIGTERM finishes its batches and costs no re-execution).
//
// A worker that missed a batch's deadline is hung until it answers a
// batch: it gets no lanes, only one empty probe batch, which queues behind
// whatever holds it. Discovery alone proves nothing: micro answers $SRV
// pings apart from the batch handler, so a worker stuck in a batch still
// answers them.
type attached struct {
	lanes   int
	missed  int  // discovery rounds in a row it did not answer
	hung    bool // missed a deadline and has not answered a batch since
	probing bool // a probe is waiting for its answer
	ctx     context.Context
	cancel  context.CancelFunc
}

// missLimit is how many discovery rounds (~400 ms each) a worker may miss
// before its idle lanes stop waiting for work for it.
const missLimit = 3

// NewProcesses returns the processes backend on an open connection.
// expect is how many workers to wait for before starting (0 = one).
func NewProcesses(nc *nats.Conn, cfg Config, expect int, log *slog.Logger) (*Processes, error) {
	cfg = cfg.WithDefaults()
	c, err := proto.NewCodec(cfg.Codec, cfg.Limits)
	if err != nil {
		return nil, err
	}
	if c, err = proto.NewCompressed(c, cfg.Compress, int(nc.MaxPayload())); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Processes{nc: nc, codec: c, cfg: cfg, expect: max(expect, 1), log: log, live: map[string]*attached{}}, nil
}

// Name is the mode name: processes, or processes/shm with a
// shared-memory registry.
func (p *Processes) Name() string {
	if p.shm != nil {
		return ModeProcesses + "/" + PlaneShm
	}
	return ModeProcesses
}

// WorkerCount is the most workers that served this job at once.
func (p *Processes) WorkerCount() int { return int(p.seen.Load()) }

// MaxBatchBytes keeps a batch within half the broker's max payload, leaving
// the other half as headroom for results larger than their input.
func (p *Processes) MaxBatchBytes() int { return int(p.nc.MaxPayload() / 2) }

// Ready waits until the expected workers are attached; coordinator.Run
// calls it before starting the job's clock.
func (p *Processes) Ready(ctx context.Context) error {
	ids, err := p.waitForWorkers(ctx, nil)
	p.ready = ids
	return err
}

// Run discovers workers (unless Ready did) and serves q on InFlight lanes
// per worker until the job is done. When every worker is gone it waits, up
// to WorkerWait, for workers to come back. Discovery asks the fleet a few
// times a second at most, whether or not workers answer.
func (p *Processes) Run(ctx context.Context, q *Queue) error {
	first, err := p.ready, error(nil)
	if first == nil {
		if first, err = p.waitForWorkers(ctx, q.Stopped()); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait() // every lane is owned here
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Rediscovery, and every wait for work or for a probe's answer (idle),
	// ends when the job is done or stops, so Run returns with it rather
	// than at the end of a discovery window or of StopGrace. Batches in
	// flight still run on ctx.
	dctx, dcancel := context.WithCancel(ctx)
	defer dcancel()
	wg.Go(func() {
		select {
		case <-q.Done():
		case <-q.Stopped():
		case <-dctx.Done():
		}
		dcancel()
	})
	lanes := laneCtx{work: ctx, idle: dctx}
	for _, id := range first { // start at once; discovery below adds the rest
		p.startLanes(lanes, q, id, &wg)
	}

	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var alone time.Time // when the last worker vanished
	for {
		ids, err := p.discover(dctx, 150*time.Millisecond, 0)
		select {
		case <-q.Done(): // lanes end with the job; that is not workers leaving
			return nil
		case <-q.Stopped(): // nor when it stops
			wg.Wait() // before cancel: lanes finish their batch, within StopGrace
			return ErrStopped
		default:
		}
		if err != nil && ctx.Err() == nil {
			p.log.Warn("worker discovery", "err", err)
		}
		if err == nil {
			p.reconcile(ids)
		}
		for _, id := range ids {
			p.startLanes(lanes, q, id, &wg)
		}
		switch n := p.liveCount(); {
		case n > 0:
			if !alone.IsZero() {
				p.log.Info("workers attached again; resuming", "workers", n, "after", time.Since(alone).Round(time.Millisecond))
			}
			alone = time.Time{}
		case alone.IsZero():
			alone = time.Now()
			p.log.Warn("no workers attached; waiting", "up_to", p.cfg.WorkerWait)
		case time.Since(alone) > p.cfg.WorkerWait:
			if n := p.hungCount(); n > 0 {
				return fmt.Errorf("%w: none answering batches for %s (%d hung: they answer discovery, not batches)", ErrNoWorkers, p.cfg.WorkerWait, n)
			}
			return fmt.Errorf("%w: none attached for %s", ErrNoWorkers, p.cfg.WorkerWait)
		}
		select {
		case <-q.Done():
			return nil
		case <-q.Stopped():
			wg.Wait() // before cancel: lanes finish their batch, within StopGrace
			return ErrStopped
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// liveCount is the number of workers attached and not given up.
func (p *Processes) liveCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.liveLocked()
}

func (p *Processes) liveLocked() int {
	n := 0
	for _, a := range p.live {
		if !a.hung && (a.ctx == nil || a.ctx.Err() == nil) {
			n++
		}
	}
	return n
}

// hungCount is the number of workers waiting to answer a probe.
func (p *Processes) hungCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, a := range p.live {
		if a.hung {
			n++
		}
	}
	return n
}

// reconcile counts the discovery rounds each attached worker missed and
// gives up those past missLimit.
func (p *Processes) reconcile(ids []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, a := range p.live {
		if slices.Contains(ids, id) {
			a.missed = 0
			continue
		}
		if a.missed++; a.missed == missLimit {
			p.log.Debug("worker stopped answering discovery; releasing its idle lanes", "id", id)
			a.cancel()
		}
	}
}

// waitForWorkers blocks until `expect` workers answer and returns their IDs,
// or until stopped closes (nil: only ctx ends the wait). It says once that
// it is waiting, and again only when the number attached changes.
func (p *Processes) waitForWorkers(ctx context.Context, stopped <-chan struct{}) ([]string, error) {
	deadline := time.Now().Add(p.cfg.WorkerWait)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	said := -1
	for {
		ids, err := p.discover(ctx, 200*time.Millisecond, p.expect)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if len(ids) >= p.expect {
			if said >= 0 {
				p.log.Info("workers attached; starting", "attached", len(ids))
			}
			return ids, nil
		}
		if err := p.nc.LastError(); errors.Is(err, nats.ErrPermissionViolation) {
			// The broker will not let this user discover workers: waiting won't help.
			return nil, fmt.Errorf("%w: nats_user: this user may not discover workers or send work (%v); log in as a coordinator user", ErrInvalidConfig, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: %d of %d expected workers answered within %s (is `ferry worker --nats-url ...` running against this broker?)",
				ErrNoWorkers, len(ids), p.expect, p.cfg.WorkerWait)
		}
		if len(ids) != said {
			p.log.Info("waiting for workers", "attached", len(ids), "expected", p.expect, "up_to", p.cfg.WorkerWait, "err", err)
			said = len(ids)
		}
		select { // pace the pings even when discover fails at once
		case <-tick.C:
		case <-stopped:
			return nil, ErrStopped
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// discover asks the fleet which workers are up, within d, returning early
// once `enough` have answered (0 = wait out d).
func (p *Processes) discover(ctx context.Context, d time.Duration, enough int) ([]string, error) {
	return Discover(ctx, p.nc, d, enough)
}

// Discover asks the ferry-worker micro service for its instances
// ($SRV.INFO.ferry-worker) and returns the addresses (<login>.<id>) of those
// whose batch endpoint is up, within d, or as soon as want have answered
// (0 = wait all of d). A worker's batch subject is proto.WorkSubject(addr).
//
// It asks for INFO, not PING: a worker answers pings from the moment it
// registers, a moment before its batch endpoint subscribes, and a batch
// sent in that moment finds no responders. INFO lists an endpoint only
// once it is subscribed, and the worker's subscription reaches the broker
// before its answer does.
func Discover(ctx context.Context, nc *nats.Conn, d time.Duration, want int) ([]string, error) {
	subj, err := micro.ControlSubject(micro.InfoVerb, proto.ServiceName, "")
	if err != nil {
		return nil, err
	}
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", inbox, err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subj, inbox, nil); err != nil {
		return nil, fmt.Errorf("ask workers: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var ids []string
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return ids, nil
		}
		var info micro.Info
		if json.Unmarshal(m.Data, &info) != nil || info.ID == "" {
			continue
		}
		for _, e := range info.Endpoints {
			if addr, ok := proto.ParseWorkSubject(e.Subject, info.ID); ok && !slices.Contains(ids, addr) {
				ids = append(ids, addr)
				break
			}
		}
		if want > 0 && len(ids) >= want {
			return ids, nil
		}
	}
}

// laneCtx are the contexts of a job's lanes: work, for a batch in flight
// (it ends StopGrace after an interrupt), and idle, for waiting (for the
// next batch, for a probe's answer), which ends when the job stops.
type laneCtx struct{ work, idle context.Context }

// startLanes tops worker id up to InFlight running lanes: all of them for
// a new worker, the retired ones for a worker given up and back. A hung
// worker gets a probe instead.
func (p *Processes) startLanes(ctx laneCtx, q *Queue, id string, wg *sync.WaitGroup) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.live[id]
	if a == nil && p.cfg.MaxWorkers > 0 && p.liveLocked() >= p.cfg.MaxWorkers {
		return // the job is capped at MaxWorkers
	}
	if a == nil {
		a = &attached{}
		p.live[id] = a
		p.log.Debug("worker attached", "id", id)
		if n := int64(len(p.live)); n > p.seen.Load() {
			p.seen.Store(n)
		}
	}
	if a.ctx == nil || a.ctx.Err() != nil { // new, or given up and back
		a.ctx, a.cancel = context.WithCancel(ctx.idle)
		a.missed = 0
	}
	idle := a.ctx
	if a.hung {
		if !a.probing {
			a.probing = true
			wg.Go(func() { p.probe(ctx, idle, q, id, wg) })
		}
		return
	}
	for range p.cfg.InFlight - a.lanes {
		a.lanes++
		wg.Go(func() {
			hung := p.lane(ctx.work, idle, q, id)
			p.mu.Lock()
			a.hung = a.hung || hung
			if a.lanes--; a.lanes == 0 && !a.hung { // a hung worker is remembered
				a.cancel()
				delete(p.live, id)
			}
			p.mu.Unlock()
		})
	}
}

// probe sends worker id an empty batch and waits for the answer as long as
// the worker answers discovery (idle) and the job runs. An answer of any
// kind (a result, an error reply) means the worker is computing again: it
// is attached again at once.
func (p *Processes) probe(ctx laneCtx, idle context.Context, q *Queue, id string, wg *sync.WaitGroup) {
	answered := false
	defer func() {
		p.mu.Lock()
		if a := p.live[id]; a != nil {
			a.probing = false
			a.hung = !answered
		}
		p.mu.Unlock()
		if answered {
			p.log.Debug("hung worker answered its probe; attaching it again", "worker", id)
			p.startLanes(ctx, q, id, wg)
		}
	}()
	link, err := NewLink(p.nc, p.codec, id)
	if err != nil {
		p.log.Warn("open link", "worker", id, "err", err)
		return
	}
	defer link.Close()
	b := proto.Batch{ID: q.ids.Add(1), Attempt: 1, Workload: p.cfg.Workload, Params: p.cfg.Params}
	r, err := link.RoundTrip(idle, &b, nil, probeWait)
	q.DiscardForged(r.Forged)
	answered = err == nil || !errors.Is(err, errGone) && !errors.Is(err, errDeadline) && idle.Err() == nil
}

// probeWait bounds a probe's wait; in practice the worker's leaving
// discovery or the job's end ends it first.
const probeWait = 24 * time.Hour

// lane sends batches to one worker, one at a time, until the job is done
// or the worker is gone. A worker that misses a deadline is suspect (dead,
// paused, hung, partitioned): its lane retires rather than feed it more
// batches to lose, reporting hung, and the worker gets no batch again
// until it answers a probe (startLanes).
//
// idle ends when the worker is given up: it only stops the wait for the
// next batch; a batch already sent is answered or times out on ctx.
func (p *Processes) lane(ctx, idle context.Context, q *Queue, id string) (hung bool) {
	link, plane, err := p.openLink(idle, id)
	if err != nil {
		p.log.Warn("open link", "worker", id, "err", err)
		return false
	}
	defer link.Close()
	noted := false
	for {
		t, err := q.Next(idle)
		if err != nil {
			return false
		}
		t.Batch.Attempt = uint32(t.attempts + 1)
		r, err := link.RoundTrip(ctx, &t.Batch, q.NewResult(), q.Timeout(t))
		q.DiscardForged(r.Forged)
		switch {
		case err == nil:
			if !noted {
				p.notePlane(id, plane)
				noted = true
			}
			q.Complete(t, r)
		case errors.Is(err, errGone):
			q.Requeue(t) // never delivered: not the batch's fault
			return false
		case errors.Is(err, errLost):
			q.Fail(t, err) // it may have killed the worker: retried, then bisected
			return false
		case errors.Is(err, errTooLarge) && len(t.Batch.Docs) == 1:
			q.Fail(t, err) // cannot split further; the error names max_payload
		case errors.Is(err, errTooLarge):
			q.Split(t)
		case ctx.Err() != nil:
			return false
		case errors.Is(err, errDeadline):
			p.log.Debug("batch timed out; retiring lane until the worker answers a probe", "batch", t.Batch.ID, "worker", id, "err", err)
			q.Fail(t, err)
			return true
		default:
			p.log.Debug("batch failed", "batch", t.Batch.ID, "worker", id, "err", err)
			q.Fail(t, err)
		}
	}
}
