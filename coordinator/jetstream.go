package coordinator

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrylab/ferry/proto"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Dispatch modes of the processes backend.
const (
	DispatchRequest   = "request"   // request/reply to each worker's own subject: fast, nothing survives the coordinator
	DispatchJetStream = "jetstream" // durable: batches and results in JetStream streams; a restarted coordinator resumes
)

// ErrNoJetStream is returned when dispatch=jetstream meets a broker
// without JetStream.
var ErrNoJetStream = errors.New("coordinator: the broker has no JetStream (start it with JetStream enabled, e.g. ferry broker --jetstream)")

// ErrResumeMismatch is returned when a job ID is run again with another
// workload, params, codec or input than the job's stored results were
// computed with; the message names the job and what differs.
var ErrResumeMismatch = errors.New("coordinator: the job's stored results do not match this run")

// ErrStoreLost is returned when a jetstream job's streams or consumer vanish
// mid-job (deleted, or the broker lost its store): its queued batches and
// stored results are gone.
var ErrStoreLost = errors.New("coordinator: the jetstream store was lost mid-job")

// JetStream is the durable dispatch of processes mode (dispatch=jetstream).
//
// Each batch is a message on the FERRY_BATCHES work-queue stream, on its
// own subject ferry.batch.<job>.<first>-<count>. Each job has its own
// durable pull consumer (explicit ack, and the job's AckWait and
// MaxDeliver), from which every worker pulls: a worker publishes the result
// to FERRY_RESULTS on ferry.result.<job>.<first>-<count>, waits for the
// stream to store it, then acks the batch. A batch whose worker dies is
// redelivered after AckWait; one whose worker is still computing it past
// its deadline is handed back by that worker, which exits; one delivered
// more than MaxAttempts times is answered with a give-up result and
// terminated, and the coordinator halves it like any batch that keeps
// failing.
//
// The job's ID is in every subject, so a coordinator killed mid-job and
// started again with the same ID resumes: it checks the job's fingerprint
// (workload, params, codec, first document), drops the job's
// unacknowledged batches, reads back which ranges already have results,
// takes those whose documents are the same from the results stream instead
// of computing them again, and sends the rest. Every document is still
// written exactly once, in order.
//
// Nothing read back from the streams is trusted: a result whose range is
// impossible for the job, or that was computed from other documents, is
// dropped, logged and counted (Stats.Forged).
//
// It costs, per batch, two stream writes (batch and result, each waiting
// for the server's ack) and a pull, against one request/reply; the report
// shows both side by side when dispatch lists both.
type JetStream struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	codec      proto.Codec
	cfg        Config
	job        string
	nonce      string // this run, in publish IDs, so re-sends are not de-duplicated away
	ackWait    time.Duration
	maxDeliver int
	log        *slog.Logger

	batches jetstream.Stream
	results jetstream.Stream
	workers jetstream.Consumer // this job's consumer, watched for "no workers" and a lost store
	fresh   bool               // setup found no consumer: stored results have no fingerprint

	mu      sync.Mutex
	pending map[string]*jsTask // batches sent and not answered, by batch subject
	prior   map[*Task]uint64   // deliveries that came to nothing before a worker handed the task back
	stored  map[int64]int      // results found in the stream, not yet used: first document -> count
	changed chan struct{}      // closed and replaced when pending shrinks
	sends   atomic.Uint64
	resumed atomic.Int64
	buf     []byte
}

type jsTask struct {
	t        *Task
	sent     time.Time
	encode   time.Duration
	bytes    int
	digest   string        // of t's documents: a result computed from others is not t's
	deadline time.Duration // a worker's, for computing it
	seq      uint64        // its stream sequence once stored; guarded by JetStream.mu
	taken    time.Time     // when a worker was first seen to have it; guarded by JetStream.mu
}

// NewJetStream returns the durable dispatch on an open connection. job is
// the job ID ("" = a new random one); run again with the same ID to resume.
func NewJetStream(nc *nats.Conn, cfg Config, job string, log *slog.Logger) (*JetStream, error) {
	cfg = cfg.WithDefaults()
	if job == "" {
		job = nuid.Next()
	}
	if !proto.ValidJobID(job) {
		return nil, fmt.Errorf("%w: job_id=%q: want 1 to 64 letters, digits, '-' or '_'", ErrInvalidConfig, job)
	}
	c, err := proto.NewCodec(cfg.Codec, cfg.Limits)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ackWait := cfg.BatchTimeout
	if ackWait == 0 {
		ackWait = 2 * cfg.TimeoutFloor // live workers heartbeat every AckWait/3
	}
	return &JetStream{
		nc: nc, js: js, codec: c, cfg: cfg, job: job, nonce: nuid.Next(), log: log,
		ackWait: ackWait, maxDeliver: cfg.MaxAttempts + 3, // the delivery after MaxAttempts gives up; a few spare
		pending: map[string]*jsTask{}, prior: map[*Task]uint64{}, stored: map[int64]int{}, changed: make(chan struct{}),
	}, nil
}

// Name is the mode name shown in reports.
func (j *JetStream) Name() string { return ModeProcesses + "/" + DispatchJetStream }

// JobID is the job's ID: run again with it to resume.
func (j *JetStream) JobID() string { return j.job }

// Resumed is how many batches were taken from a previous run's results
// instead of being computed.
func (j *JetStream) Resumed() int64 { return j.resumed.Load() }

// MaxBatchBytes keeps a batch within half the broker's max payload.
func (j *JetStream) MaxBatchBytes() int { return int(j.nc.MaxPayload() / 2) }

// Run sends q's batches to the stream and completes them from the results
// stream until the job is done.
func (j *JetStream) Run(ctx context.Context, q *Queue) error {
	// The job's fingerprint holds the input's first document: take the
	// first batch before touching the job's streams.
	t, err := q.Next(ctx)
	if errors.Is(err, ErrDone) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := j.setup(ctx, t.Batch.Docs[0]); err != nil {
		return err
	}
	from, err := j.index(ctx, q)
	if err != nil {
		return err
	}
	cons, err := j.js.OrderedConsumer(ctx, proto.ResultStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{proto.ResultSubjectPrefix + "." + j.job + ".>"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
	})
	if err != nil {
		return fmt.Errorf("jetstream: results consumer: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { j.onResult(q, m) })
	if err != nil {
		return fmt.Errorf("jetstream: consume results: %w", err)
	}
	defer cc.Stop()
	j.log.Info("jetstream dispatch", "job_id", j.job, "ack_wait", j.ackWait, "resumable_batches", len(j.stored))

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel (deferred below, so run first)
	defer cancel()
	var watchErr error
	wg.Add(1)
	go func() { // owned by Run: ends with ctx
		defer wg.Done()
		if err := j.watch(ctx, q); err != nil {
			watchErr = err
			cancel()
		}
	}()
	stop := func(err error) error {
		cancel()
		wg.Wait()
		if watchErr != nil { // no workers, or the store is gone: the cause, not ctx's end
			return watchErr
		}
		return err
	}
	for {
		if err := j.dispatch(ctx, q, t); err != nil {
			return stop(err)
		}
		t, err = q.Next(ctx)
		switch {
		case errors.Is(err, ErrDone):
			j.finish()
			return nil
		case errors.Is(err, ErrStopped):
			j.awaitPending(ctx)
			return ErrStopped
		case err != nil:
			return stop(err)
		}
	}
}

// fits reports whether documents [first, first+n), read from the wire, can
// be a batch of this job: no more than a batch may hold, and within the
// input once its length is known. ParseBatchSubject has checked that the
// range is not empty and ends within int64.
func (j *JetStream) fits(q *Queue, first int64, n int) bool {
	if n > j.cfg.Limits.MaxDocs {
		return false
	}
	total := q.col.inputLen()
	return total < 0 || first+int64(n) <= total
}

// reject drops a result that answers no batch of this job: a bad message
// costs a log line and a count, never the job.
func (j *JetStream) reject(q *Queue, subject, why string) {
	q.DiscardForged(1)
	j.log.Error("jetstream result dropped", "job_id", j.job, "subject", subject, "why", why)
}

// dispatch takes t's documents from stored results where it can and sends
// the rest, as one batch per gap.
func (j *JetStream) dispatch(ctx context.Context, q *Queue, t *Task) error {
	j.mu.Lock()
	if len(j.stored) == 0 {
		j.mu.Unlock()
		return j.send(ctx, q, t)
	}
	first, end := t.Batch.First, t.Batch.First+int64(len(t.Batch.Docs))
	type piece struct {
		first, end int64
		stored     bool
	}
	var pieces []piece
	gap := int64(-1)
	for i := first; i < end; {
		// n <= end-i, not i+n <= end: n came from the wire (fits bounds it).
		if n, ok := j.stored[i]; ok && int64(n) <= end-i {
			delete(j.stored, i)
			if gap >= 0 {
				pieces = append(pieces, piece{gap, i, false})
				gap = -1
			}
			pieces = append(pieces, piece{i, i + int64(n), true})
			i += int64(n)
			continue
		}
		if gap < 0 {
			gap = i
		}
		i++
	}
	if gap >= 0 {
		pieces = append(pieces, piece{gap, end, false})
	}
	j.mu.Unlock()
	for _, p := range pieces {
		sub := t
		if p.first != first || p.end != end {
			sub = q.newTask(p.first, t.Batch.Docs[p.first-first:p.end-first])
			sub.fresh = false
		}
		if !p.stored {
			if err := j.send(ctx, q, sub); err != nil {
				return err
			}
			continue
		}
		if err := j.resume(ctx, q, sub); err != nil {
			if !errors.Is(err, errNotComputed) {
				j.log.Warn("stored result unusable; computing it again", "job_id", j.job, "first", p.first, "err", err)
			}
			if err := j.send(ctx, q, sub); err != nil {
				return err
			}
		}
	}
	return nil
}

// send publishes t to the batch stream, retrying until the stream has it
// (the broker may be restarting) or ctx ends.
func (j *JetStream) send(ctx context.Context, q *Queue, t *Task) error {
	t.Batch.Attempt = uint32(t.attempts + 1)
	crand.Read(t.Batch.Token[:]) // its results must carry it (onResult)
	t0 := time.Now()
	var err error
	if j.buf, err = j.codec.AppendBatch(j.buf[:0], &t.Batch); err != nil {
		q.Fail(t, err)
		return nil
	}
	if int64(len(j.buf)) > j.nc.MaxPayload() {
		q.Split(t)
		return nil
	}
	subj := proto.BatchSubject(j.job, t.Batch.First, len(t.Batch.Docs))
	digest := docsDigest(t.Batch.Docs)
	// The worker's deadline for computing it, as request mode's reply
	// deadline: past it the worker hands the batch back and exits.
	deadline := min(q.Timeout(t), proto.MaxDeadline)
	msg := &nats.Msg{Subject: subj, Data: j.buf, Header: nats.Header{
		proto.HeaderCodec:       {j.codec.Name()},
		proto.HeaderMaxAttempts: {strconv.Itoa(j.cfg.MaxAttempts)},
		proto.HeaderDeadline:    {strconv.FormatInt(int64(deadline), 10)},
		proto.HeaderDocsDigest:  {digest},
		proto.HeaderToken:       {t.Batch.Token.String()},
	}}
	j.mu.Lock()
	if n := j.prior[t]; n > 0 {
		msg.Header.Set(proto.HeaderPriorDeliveries, strconv.FormatUint(n, 10))
	}
	j.mu.Unlock()
	p := &jsTask{t: t, encode: time.Since(t0), bytes: len(j.buf), digest: digest, deadline: deadline}
	j.mu.Lock()
	j.pending[subj] = p // before the publish: a fast worker may answer before the ack
	j.mu.Unlock()
	// One ID for every try of this send: a try that reached the stream but
	// lost its ack is not stored twice.
	id := j.nonce + "-" + strconv.FormatUint(j.sends.Add(1), 10)
	for try := 0; ; try++ {
		p.sent = time.Now()
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ack, err := j.js.PublishMsg(pctx, msg, jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			j.mu.Lock()
			p.seq = ack.Sequence
			j.mu.Unlock()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if try == 0 {
			j.log.Warn("publish batch; retrying", "subject", subj, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// onResult matches a result from the results stream to its batch. Its
// range, delivery count and documents are checked against the job before
// anything else is read.
func (j *JetStream) onResult(q *Queue, m jetstream.Msg) {
	_, first, n, err := proto.ParseBatchSubject(m.Subject())
	if err != nil || !j.fits(q, first, n) {
		j.reject(q, m.Subject(), "impossible range for this job")
		return
	}
	h := m.Headers()
	d, err := j.delivery(h)
	if err != nil {
		j.reject(q, m.Subject(), err.Error())
		return
	}
	subj := proto.BatchSubject(j.job, first, n)
	j.mu.Lock()
	p := j.pending[subj]
	switch {
	case p != nil && h.Get(proto.HeaderToken) != p.t.Batch.Token.String():
		j.mu.Unlock()
		j.reject(q, m.Subject(), "without the token of its batch in flight")
		return
	case p != nil && h.Get(proto.HeaderDocsDigest) != p.digest:
		j.mu.Unlock()
		j.reject(q, m.Subject(), "computed from other documents than this run's batch")
		return
	case p != nil:
		delete(j.pending, subj)
		if strings.HasPrefix(h.Get(proto.HeaderError), proto.ErrCodeHandBack) {
			// Handed back uncomputed: the deliveries before this one came
			// to nothing, and the next message must still count them.
			j.prior[p.t] += uint64(max(d-1, 0))
		} else {
			delete(j.prior, p.t)
		}
		close(j.changed)
		j.changed = make(chan struct{})
	case p == nil && q.col.discardIfDone(first, n):
		// A batch run twice (redelivered while its first worker was only
		// slow, or answered both before and after a resume): written once.
	default:
		// No batch in flight: a forgery, or a previous run's batch
		// finishing late, whose token is gone: dropped (it is computed
		// again) and counted.
		defer q.DiscardForged(1)
	}
	j.mu.Unlock()
	if p == nil {
		return
	}
	if why := h.Get(proto.HeaderError); why != "" {
		j.fail(q, p.t, why)
		return
	}
	if d > 1 {
		q.retries.Add(int64(d - 1)) // redeliveries: the batch may have run d times
	}
	codec, err := j.codecFor(h)
	if err != nil {
		q.Fail(p.t, err)
		return
	}
	t0 := time.Now()
	res := &proto.Result{}
	if err := codec.DecodeResult(m.Data(), res); err != nil {
		q.Fail(p.t, err)
		return
	}
	decode := time.Since(t0)
	res.BatchID = p.t.Batch.ID
	r := Result{Res: res, Worker: h.Get(proto.HeaderWorker), BytesOut: p.bytes, BytesIn: len(m.Data())}
	r.Timing[StageEncode] = p.encode
	workerStages(h, &r.Timing)
	r.Timing.boundQueue(t0.Sub(p.sent))
	// Transport here includes waiting in the stream for a free worker.
	r.Timing[StageTransport] = max(t0.Sub(p.sent)-r.Timing.AtWorker(), 1)
	r.Timing[StageDecode] = decode
	q.Complete(p.t, r)
}

// delivery reads a result's HeaderDelivery: 0 when absent, an error unless
// it is a delivery the job's consumer can make (1 to MaxDeliver).
func (j *JetStream) delivery(h nats.Header) (int, error) {
	v := h.Get(proto.HeaderDelivery)
	if v == "" {
		return 0, nil
	}
	d, err := strconv.Atoi(v)
	if err != nil || d < 1 || d > j.maxDeliver {
		return 0, fmt.Errorf("%s %q: want 1 to %d", proto.HeaderDelivery, v, j.maxDeliver)
	}
	return d, nil
}

// fail handles a result that is not one: send again a batch a stopping
// worker handed back (no attempt: it was not computed), split a batch
// whose result is too large, halve (or, for one document, fail) a batch
// that kept failing.
func (j *JetStream) fail(q *Queue, t *Task, why string) {
	switch {
	case strings.HasPrefix(why, proto.ErrCodeHandBack):
		q.Requeue(t)
	case strings.HasPrefix(why, proto.ErrCodeTooLarge):
		q.Split(t)
	default:
		q.GiveUp(t, errors.New(why))
	}
}

// awaitPending waits, on an interrupt, for the batches already sent to be
// answered, until ctx ends (StopGrace). Those still unanswered stay in the
// stream; a run with the same job ID finds their results.
func (j *JetStream) awaitPending(ctx context.Context) {
	for {
		j.mu.Lock()
		n, changed := len(j.pending), j.changed
		j.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// codecFor is the codec a result was encoded with (its header), usually ours.
func (j *JetStream) codecFor(h nats.Header) (proto.Codec, error) {
	name := h.Get(proto.HeaderCodec)
	if name == "" || name == j.codec.Name() {
		return j.codec, nil
	}
	return proto.NewCodec(name, j.cfg.Limits)
}
