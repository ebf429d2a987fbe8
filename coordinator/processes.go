package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrylab/ferry/proto"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// ErrNoWorkers is returned when no worker answers within Config.WorkerWait.
var ErrNoWorkers = errors.New("coordinator: no workers")

// Processes sends batches over NATS to ferry-worker processes.
//
// Dispatch is credit-based: the backend discovers workers through the micro
// service's $SRV.PING and runs InFlight lanes per worker, each sending one
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

	mu      sync.Mutex
	live    map[string]bool // worker IDs with running lanes
	seen    atomic.Int64    // most workers attached at once
	lastPng time.Time
}

// NewProcesses returns the processes backend on an open connection.
// expect is how many workers to wait for before starting (0 = one).
func NewProcesses(nc *nats.Conn, cfg Config, expect int, log *slog.Logger) (*Processes, error) {
	cfg = cfg.WithDefaults()
	c, err := proto.NewCodec(cfg.Codec, cfg.Limits)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Processes{nc: nc, codec: c, cfg: cfg, expect: max(expect, 1), log: log, live: map[string]bool{}}, nil
}

// Name is the mode name.
func (p *Processes) Name() string { return ModeProcesses }

// WorkerCount is the most workers that served this job at once.
func (p *Processes) WorkerCount() int { return int(p.seen.Load()) }

// MaxBatchBytes keeps a batch within half the broker's max payload, leaving
// the other half as headroom for results larger than their input.
func (p *Processes) MaxBatchBytes() int { return int(p.nc.MaxPayload() / 2) }

// Run discovers workers and serves q on InFlight lanes per worker until the
// job is done. When every worker is gone it waits, up to WorkerWait, for
// workers to come back.
func (p *Processes) Run(ctx context.Context, q *Queue) error {
	first, err := p.waitForWorkers(ctx)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait() // every lane is owned here
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, id := range first {
		p.startLanes(ctx, q, id, &wg)
	}

	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var alone time.Time // when the last worker vanished
	for {
		var ids []string
		if p.cfg.MaxWorkers == 0 || p.liveCount() < p.cfg.MaxWorkers {
			ids, err = p.discover(ctx, 150*time.Millisecond, 0)
			if err != nil && ctx.Err() == nil {
				p.log.Warn("worker discovery", "err", err)
			}
		}
		for _, id := range ids {
			p.startLanes(ctx, q, id, &wg)
		}
		switch n := p.liveCount(); {
		case n > 0:
			alone = time.Time{}
		case alone.IsZero():
			alone = time.Now()
			p.log.Warn("no workers attached; waiting", "up_to", p.cfg.WorkerWait)
		case time.Since(alone) > p.cfg.WorkerWait:
			return fmt.Errorf("%w: none attached for %s", ErrNoWorkers, p.cfg.WorkerWait)
		}
		select {
		case <-q.Done():
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (p *Processes) liveCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.live)
}

// waitForWorkers blocks until `expect` workers answer, saying so while it
// waits, and returns the IDs that answered.
func (p *Processes) waitForWorkers(ctx context.Context) ([]string, error) {
	deadline := time.Now().Add(p.cfg.WorkerWait)
	lastSay := time.Time{}
	for {
		ids, err := p.discover(ctx, 200*time.Millisecond, p.expect)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if len(ids) >= p.expect {
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
		if time.Since(lastSay) > 2*time.Second {
			p.log.Info("waiting for workers", "attached", len(ids), "expected", p.expect, "err", err)
			lastSay = time.Now()
		}
	}
}

// discover pings the ferry-worker service and collects the IDs that answer
// within d, returning early once `enough` have answered (0 = wait out d).
func (p *Processes) discover(ctx context.Context, d time.Duration, enough int) ([]string, error) {
	subj, err := micro.ControlSubject(micro.PingVerb, proto.ServiceName, "")
	if err != nil {
		return nil, err
	}
	inbox := p.nc.NewRespInbox()
	sub, err := p.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", inbox, err)
	}
	defer sub.Unsubscribe()
	if err := p.nc.PublishRequest(subj, inbox, nil); err != nil {
		return nil, fmt.Errorf("ping workers: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var ids []string
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return ids, nil
		}
		var ping micro.Ping
		if json.Unmarshal(m.Data, &ping) == nil && ping.ID != "" {
			ids = append(ids, ping.ID)
		}
		if enough > 0 && len(ids) >= enough {
			return ids, nil
		}
	}
}

func (p *Processes) startLanes(ctx context.Context, q *Queue, id string, wg *sync.WaitGroup) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live[id] || (p.cfg.MaxWorkers > 0 && len(p.live) >= p.cfg.MaxWorkers) {
		return
	}
	p.live[id] = true
	if n := int64(len(p.live)); n > p.seen.Load() {
		p.seen.Store(n)
	}
	p.log.Debug("worker attached", "id", id)
	var lanes atomic.Int32
	lanes.Store(int32(p.cfg.InFlight))
	for range p.cfg.InFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.lane(ctx, q, id)
			if lanes.Add(-1) == 0 {
				p.mu.Lock()
				delete(p.live, id)
				p.mu.Unlock()
			}
		}()
	}
}

// errGone means the worker is no longer attached.
var errGone = errors.New("worker gone")

// lane sends batches to one worker, one at a time, until the job is done
// or the worker is gone.
func (p *Processes) lane(ctx context.Context, q *Queue, id string) {
	subject := proto.WorkSubject(id)
	var buf []byte
	for {
		t, err := q.Next(ctx)
		if err != nil {
			return
		}
		t.Batch.Attempt = uint32(t.attempts + 1)
		var r Result
		buf, r, err = p.roundTrip(ctx, subject, t, q.Timeout(t), buf)
		switch {
		case err == nil:
			q.Complete(t, r)
		case errors.Is(err, errGone):
			q.Requeue(t) // not the batch's fault
			return
		case errors.Is(err, errTooLarge) && len(t.Batch.Docs) == 1:
			q.Fail(t, err) // cannot split further; the error names max_payload
		case errors.Is(err, errTooLarge):
			q.Split(t)
		case ctx.Err() != nil:
			return
		default:
			p.log.Debug("batch failed", "batch", t.Batch.ID, "worker", id, "err", err)
			q.Fail(t, err)
		}
	}
}

var errTooLarge = errors.New("over the payload limit")

func (p *Processes) roundTrip(ctx context.Context, subject string, t *Task, timeout time.Duration, buf []byte) ([]byte, Result, error) {
	var r Result
	t0 := time.Now()
	buf, err := p.codec.AppendBatch(buf[:0], &t.Batch)
	if err != nil {
		return buf, r, err
	}
	if int64(len(buf)) > p.nc.MaxPayload() {
		return buf, r, fmt.Errorf("batch of %d bytes: %w", len(buf), errTooLarge)
	}
	msg := &nats.Msg{Subject: subject, Data: buf, Header: nats.Header{proto.HeaderCodec: {p.codec.Name()}}}
	t1 := time.Now()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	reply, err := p.nc.RequestMsgWithContext(rctx, msg)
	cancel()
	t2 := time.Now()
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return buf, r, errGone
	case errors.Is(err, context.DeadlineExceeded):
		return buf, r, fmt.Errorf("no reply within %s", timeout)
	case err != nil:
		return buf, r, err
	}
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
		msg := reply.Header.Get(micro.ErrorHeader)
		if code == "413" {
			return buf, r, fmt.Errorf("%s: %w", msg, errTooLarge)
		}
		return buf, r, fmt.Errorf("worker error %s: %s", code, msg)
	}
	res := &proto.Result{}
	if err := p.codec.DecodeResult(reply.Data, res); err != nil {
		return buf, r, err
	}
	t3 := time.Now()
	r = Result{Res: res, Worker: reply.Header.Get(proto.HeaderWorker), BytesOut: len(buf), BytesIn: len(reply.Data)}
	r.Timing[StageEncode] = t1.Sub(t0)
	r.Timing[StageWorkerDecode] = headerDur(reply, proto.HeaderDecodeNs)
	r.Timing[StageCompute] = headerDur(reply, proto.HeaderComputeNs)
	r.Timing[StageWorkerEncode] = headerDur(reply, proto.HeaderEncodeNs)
	r.Timing[StageTransport] = max(t2.Sub(t1)-r.Timing.Busy(), 1)
	r.Timing[StageDecode] = t3.Sub(t2)
	return buf, r, nil
}

func headerDur(m *nats.Msg, key string) time.Duration {
	v, err := strconv.ParseInt(m.Header.Get(key), 10, 64)
	if err != nil || v < 0 {
		return 0
	}
	return time.Duration(v)
}
