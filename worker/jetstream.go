package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferrylab/ferry/proto"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// ErrHung is returned by Run when a jetstream batch is still being
// computed past its deadline (proto.HeaderDeadline). Go cannot stop the
// computation, so the worker hands the batch back, counted as a delivery,
// and exits: whoever started it (ferry worker --procs, ferry run, a
// container's restart policy) starts it again, as after a crash.
var ErrHung = errors.New("worker: a batch outlived its deadline")

// consumeJetStream serves batches from the FERRY_BATCHES work queue
// (dispatch=jetstream) until ctx ends: pull one batch from any job's
// consumer, compute it, publish its result to FERRY_RESULTS and wait for
// the stream to store it, then ack the batch. A worker that dies before the
// ack has its batch redelivered to another after AckWait; one that dies
// between the two makes a duplicate result, which the results stream's
// de-duplication (message ID) and the coordinator's collector both drop.
//
// While a batch is computed, and while the next one waits its turn (one is
// fetched ahead so the worker never idles on a round trip), the worker tells
// the server it is still working (InProgress) every AckWait/3: only a dead
// or paused worker's batches are redelivered. It vouches for the batch in
// hand only until the batch's deadline: a batch still running then is hung,
// and consumeJetStream returns ErrHung (see there). On ctx's end the one
// in hand is finished and acked, and the fetched-ahead one is handed back
// uncomputed (handBack), which does not count as a delivery.
//
// A delivery past the batch's Ferry-Max-Attempts is not computed: the
// earlier ones died with their workers, so the worker publishes a give-up
// result ("poison: ...") and terminates the message; a batch it cannot
// decode, or whose result is over the payload limit, likewise ("400 ...",
// "413 ..."). The coordinator halves such batches.
func (w *Worker) consumeJetStream(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	fctx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()
	jobs := &jobConsumers{js: js, log: w.log, byName: map[string]jetstream.Consumer{}, wake: make(chan struct{}, 1)}
	// A new job is served at once, not at the next listing; without the
	// advisory (no permission) it waits for that.
	if sub, err := nc.Subscribe(proto.JobCreatedAdvisory, func(*nats.Msg) { jobs.poke() }); err == nil {
		defer sub.Unsubscribe()
	} else {
		w.log.Debug("subscribe to new jobs", "err", err)
	}
	next := make(chan delivery)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the fetcher; owned here, ends with fctx
		defer wg.Done()
		defer close(next)
		w.fetch(fctx, js, jobs, next)
	}()
	defer wg.Wait()
	for d := range next {
		if err := w.handleJetStream(js, d); err != nil {
			// Hung. Stop pulling first, so the Nak below cannot bring the
			// batch back to this worker, and hand back what was fetched.
			stopFetch()
			for d := range next {
				w.handBack(js, d.m)
			}
			_ = d.m.Nak() // counted as a delivery: this one came to nothing, like a crash
			return err
		}
	}
	return nil
}

// delivery is a batch message and the AckWait of the job's consumer it
// came from, which paces the heartbeats.
type delivery struct {
	m       jetstream.Msg
	wait    time.Duration
	arrived time.Time // when it was pulled: its queue stage starts there
}

// fetch pulls one batch at a time and holds it, heartbeating, until the
// compute loop takes it; when ctx ends first it hands the batch back.
func (w *Worker) fetch(ctx context.Context, js jetstream.JetStream, jobs *jobConsumers, next chan<- delivery) {
	for ctx.Err() == nil {
		d, ok := jobs.pull(ctx)
		if !ok {
			continue
		}
		if ctx.Err() != nil { // it came as the worker stopped
			w.handBack(js, d.m)
			return
		}
		d.arrived = time.Now() // held ahead while the batch before it computes: its queue
		beat := time.NewTicker(d.wait / 3)
	hold:
		for {
			select {
			case next <- d:
				break hold
			case <-beat.C:
				_ = d.m.InProgress()
			case <-ctx.Done():
				w.handBack(js, d.m)
				break hold
			}
		}
		beat.Stop()
	}
}

// jobConsumers are the batch stream's consumers, one per job, that a
// worker pulls from. It lists them when a consumer is created (poke) and
// every second, and drops one as soon as a pull finds it deleted.
type jobConsumers struct {
	js     jetstream.JetStream
	log    *slog.Logger
	wake   chan struct{} // poked: list again now
	stream jetstream.Stream
	byName map[string]jetstream.Consumer
	names  []string // byName's keys, sorted: the order of turns
	turn   int
	listed time.Time // when names was last refreshed
	infoAt time.Time // when the consumers' settings were last read
	said   bool      // "waiting for a job" was logged
}

// poke asks for the jobs to be listed again at once: a consumer was
// created. It never blocks.
func (c *jobConsumers) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// pull takes the next batch: from the only job's consumer, waiting up to
// 2 s; with several jobs, from the first in turn that has one waiting, or
// else waiting briefly on one of them. It reports false when there was
// none.
func (c *jobConsumers) pull(ctx context.Context) (delivery, bool) {
	c.refresh(ctx)
	switch len(c.names) {
	case 0:
		if !c.said {
			c.log.Info("waiting for a jetstream job (a coordinator with dispatch=jetstream creates one)", "stream", proto.BatchStream)
			c.said = true
		}
		t := time.NewTimer(500 * time.Millisecond)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-c.wake:
			c.listed = time.Time{}
		case <-t.C:
		}
		return delivery{}, false
	case 1:
		// Short pulls: one lost with a restarting broker costs a second, not
		// the default 30, and a stopping worker waits at most that long.
		return c.next(ctx, c.names[0], time.Second)
	}
	for k := range c.names {
		name := c.names[(c.turn+k)%len(c.names)]
		batch, err := c.byName[name].FetchNoWait(1)
		if err != nil {
			c.failed(ctx, name, err)
			continue
		}
		for m := range batch.Messages() {
			c.turn += k + 1
			return delivery{m: m, wait: ackWait(c.byName[name])}, true
		}
	}
	c.turn++
	return c.next(ctx, c.names[c.turn%len(c.names)], 250*time.Millisecond)
}

// next waits up to wait for a batch from the consumer name. The pull is
// not cut short when ctx ends: the server may be delivering a batch to it
// right then, which would be lost and count as a delivery. The caller
// hands back a batch that comes after ctx's end.
func (c *jobConsumers) next(ctx context.Context, name string, wait time.Duration) (delivery, bool) {
	cons := c.byName[name]
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait)
	m, err := cons.Next(jetstream.FetchContext(fctx))
	cancel()
	if err != nil {
		c.failed(ctx, name, err)
		return delivery{}, false
	}
	return delivery{m: m, wait: ackWait(cons)}, true
}

// failed handles a failed pull: none waiting is normal; a deleted
// consumer's job has finished; otherwise the broker may be restarting, so
// list the jobs again shortly.
func (c *jobConsumers) failed(ctx context.Context, name string, err error) {
	if ctx.Err() != nil || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return
	}
	if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
		delete(c.byName, name)
		c.names = slices.Sorted(maps.Keys(c.byName))
		c.listed = time.Time{}
		return
	}
	c.log.Debug("fetch batch", "consumer", name, "err", err)
	c.listed = time.Time{}
	pause(ctx, 250*time.Millisecond)
}

// refresh lists the jobs' consumers once a second and reads their settings
// (AckWait, which a resumed job may change) every five.
func (c *jobConsumers) refresh(ctx context.Context) {
	select {
	case <-c.wake:
		c.listed = time.Time{}
	default:
	}
	if time.Since(c.listed) < time.Second {
		return
	}
	c.listed = time.Now()
	if c.stream == nil {
		s, err := c.js.Stream(ctx, proto.BatchStream)
		if err != nil {
			return // not created yet: a coordinator creates it
		}
		c.stream = s
	}
	names := c.stream.ConsumerNames(ctx)
	seen := map[string]bool{}
	for name := range names.Name() {
		if !strings.HasPrefix(name, proto.JobConsumerPrefix) {
			continue
		}
		seen[name] = true
		if _, ok := c.byName[name]; ok {
			continue
		}
		cons, err := c.js.Consumer(ctx, proto.BatchStream, name)
		if err != nil {
			continue
		}
		c.byName[name] = cons
		c.said = false
		c.log.Info("consuming jetstream batches", "stream", proto.BatchStream, "consumer", name)
	}
	if err := names.Err(); err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			c.stream = nil // deleted: a coordinator creates it again
		}
		return // keep the known ones: the broker may be restarting
	}
	for name := range c.byName {
		if !seen[name] {
			delete(c.byName, name) // the job finished
		}
	}
	c.names = slices.Sorted(maps.Keys(c.byName))
	if time.Since(c.infoAt) > 5*time.Second {
		for _, cons := range c.byName {
			_, _ = cons.Info(ctx) // updates CachedInfo: heartbeats follow AckWait
		}
		c.infoAt = time.Now()
	}
}

func ackWait(cons jetstream.Consumer) time.Duration {
	if info := cons.CachedInfo(); info != nil && info.Config.AckWait > 0 {
		return info.Config.AckWait
	}
	return 30 * time.Second // the server's default
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// handleJetStream computes one batch message and publishes its result. It
// returns ErrHung when the batch is still being computed past its deadline;
// the caller hands it back.
func (w *Worker) handleJetStream(js jetstream.JetStream, d delivery) error {
	m := d.m
	meta, err := m.Metadata()
	if err != nil {
		_ = m.TermWithReason(proto.ErrCodeBadBatch + " not a jetstream message")
		return nil
	}
	job, first, n, err := proto.ParseBatchSubject(m.Subject())
	if err != nil {
		_ = m.TermWithReason(proto.ErrCodeBadBatch + " " + err.Error()) // not ours: no result subject to answer on
		return nil
	}
	result := proto.ResultSubject(job, first, n)
	delivered := meta.NumDelivered + priorDeliveries(m.Headers())
	if limit, _ := strconv.ParseUint(m.Headers().Get(proto.HeaderMaxAttempts), 10, 64); limit > 0 && delivered > limit {
		// Earlier deliveries neither answered nor came back: the batch kills
		// or hangs whoever takes it. Say so durably and terminate it; the
		// coordinator halves it to isolate the bad document.
		w.giveUp(js, m, result, meta, fmt.Sprintf("%s: delivered %d times without a result", proto.ErrCodePoison, delivered-1))
		return nil
	}
	deadline, err := proto.ParseDeadline(m.Headers().Get(proto.HeaderDeadline))
	if err != nil {
		w.giveUp(js, m, result, meta, proto.ErrCodeBadBatch+" "+err.Error())
		return nil
	}
	// The batch goes through the same handler as a request, so both
	// dispatches compute, time and answer a batch the same way.
	req := &streamRequest{m: m, out: &nats.Msg{Subject: result}}
	done := make(chan struct{})
	go func() { // joined by vouch, unless the batch hangs: then the process exits under it
		defer close(done)
		w.handle(req, d.arrived)
	}()
	if !vouch(m, done, d.wait/3, deadline) {
		w.log.Error("batch still computing past its deadline: a hung document; handing it back and exiting", "subject", m.Subject(), "deadline", deadline)
		return fmt.Errorf("%w: %s still computing after %s", ErrHung, m.Subject(), deadline)
	}
	if req.code != "" {
		// A bad batch or a too-large result is not cured by redelivery.
		w.log.Warn("batch rejected", "subject", m.Subject(), "code", req.code, "err", req.desc)
		w.giveUp(js, m, result, meta, req.code+" "+req.desc)
		return nil
	}
	if w.publish(js, m, req.out, meta, "") {
		if err := m.Ack(); err != nil {
			w.log.Debug("ack batch", "subject", m.Subject(), "err", err)
		}
	}
	return nil
}

// priorDeliveries reads a batch's proto.HeaderPriorDeliveries: 0 when
// absent or not a count, and at most a million, so adding it cannot
// overflow.
func priorDeliveries(h nats.Header) uint64 {
	n, err := strconv.ParseUint(h.Get(proto.HeaderPriorDeliveries), 10, 64)
	if err != nil {
		return 0
	}
	return min(n, 1_000_000)
}

// vouch tells the server every beat that m is still being computed, until
// done is closed (true) or the deadline passes first (false; 0 = none).
func vouch(m jetstream.Msg, done <-chan struct{}, beat, deadline time.Duration) bool {
	t := time.NewTicker(beat)
	defer t.Stop()
	var expired <-chan time.Time
	if deadline > 0 {
		dl := time.NewTimer(deadline)
		defer dl.Stop()
		expired = dl.C
	}
	for {
		select {
		case <-done:
			return true
		case <-t.C:
			_ = m.InProgress()
		case <-expired:
			select {
			case <-done: // finished just in time
				return true
			default:
				return false
			}
		}
	}
}

// streamRequest lets the request handler serve a batch from the stream:
// it reads the message and keeps the answer (or the error) for publishing
// to the results stream.
type streamRequest struct {
	m          jetstream.Msg
	out        *nats.Msg
	code, desc string
}

func (r *streamRequest) Respond(data []byte, opts ...micro.RespondOpt) error {
	var tmp nats.Msg
	for _, o := range opts {
		o(&tmp)
	}
	r.out.Data = append([]byte(nil), data...) // the handler reuses its buffer
	r.out.Header = nats.Header{}
	for k, v := range tmp.Header { // and may reuse its header map
		r.out.Header[k] = append([]string(nil), v...)
	}
	return nil
}

func (r *streamRequest) RespondJSON(v any, opts ...micro.RespondOpt) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return r.Respond(b, opts...)
}

func (r *streamRequest) Error(code, description string, _ []byte, _ ...micro.RespondOpt) error {
	r.code, r.desc = code, description
	return nil
}

func (r *streamRequest) Data() []byte           { return r.m.Data() }
func (r *streamRequest) Headers() micro.Headers { return micro.Headers(r.m.Headers()) }
func (r *streamRequest) Subject() string        { return r.m.Subject() }
func (r *streamRequest) Reply() string          { return "" }

// giveUp publishes a result marking the whole batch failed with why, then
// terminates the batch message so it is not delivered again.
func (w *Worker) giveUp(js jetstream.JetStream, m jetstream.Msg, subject string, meta *jetstream.MsgMetadata, why string) {
	out := &nats.Msg{Subject: subject, Header: nats.Header{proto.HeaderError: {why}}}
	if w.publish(js, m, out, meta, "") {
		_ = m.TermWithReason(why)
	}
}

// handBack gives m back uncomputed when the worker stops: it publishes a
// result saying so (proto.HandBackReason), on which the coordinator sends
// the batch again without counting an attempt, and terminates m. A Nak
// would count as a delivery, so a rolling restart would make good batches
// look like poison. If the result cannot be published, m is Nak'ed after
// all: better a delivery counted than a batch lost.
func (w *Worker) handBack(js jetstream.JetStream, m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		_ = m.Nak()
		return
	}
	job, first, n, err := proto.ParseBatchSubject(m.Subject())
	if err != nil {
		_ = m.TermWithReason(proto.ErrCodeBadBatch + " " + err.Error())
		return
	}
	out := &nats.Msg{Subject: proto.ResultSubject(job, first, n), Header: nats.Header{proto.HeaderError: {proto.HandBackReason}}}
	w.log.Info("stopping: handing back a batch not computed", "subject", m.Subject())
	if w.publish(js, m, out, meta, "#handback") {
		_ = m.TermWithReason(proto.HandBackReason)
	}
}

// publish stores out in the results stream, or hands m back for redelivery.
// kind tells apart the IDs of results that are not the computed one.
func (w *Worker) publish(js jetstream.JetStream, m jetstream.Msg, out *nats.Msg, meta *jetstream.MsgMetadata, kind string) bool {
	out.Header.Set(proto.HeaderCodec, m.Headers().Get(proto.HeaderCodec))
	out.Header.Set(proto.HeaderDocsDigest, m.Headers().Get(proto.HeaderDocsDigest)) // which documents it answers
	out.Header.Set(proto.HeaderDelivery, strconv.FormatUint(meta.NumDelivered, 10))
	out.Header.Set(proto.HeaderWorker, w.cfg.Name) // who computed it: the coordinator's busy time
	tok := m.Headers().Get(proto.HeaderToken)
	out.Header.Set(proto.HeaderToken, tok) // the coordinator takes no result without it
	// The message ID makes a second execution of the same stream message a
	// no-op in the results stream; the token in it keeps anyone who did not
	// receive the batch from taking the ID first.
	id := out.Subject + "#" + strconv.FormatUint(meta.Sequence.Stream, 10) + kind + "#" + tok
	// Retried with short timeouts: an ack lost with a restarting broker
	// must not hold the worker long, and the ID makes a retry idempotent.
	var err error
	for try := 0; try < 5; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = js.PublishMsg(ctx, out, jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			return true
		}
	}
	w.log.Warn("publish result; handing the batch back", "subject", out.Subject, "err", err)
	_ = m.Nak()
	return false
}
