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

// resultsMaxAge bounds how long an unfinished job's results are kept for a
// resume; a finished job's results are purged at once.
const resultsMaxAge = 24 * time.Hour

// JetStream is the durable dispatch of processes mode (dispatch=jetstream).
//
// Each batch is a message on the FERRY_BATCHES work-queue stream, on its
// own subject ferry.batch.<job>.<first>-<count>. Workers share one durable
// pull consumer (explicit ack, AckWait, MaxDeliver): a worker publishes the
// result to FERRY_RESULTS on ferry.result.<job>.<first>-<count>, waits for
// the stream to store it, then acks the batch. A batch whose worker dies is
// redelivered after AckWait; one delivered more than MaxAttempts times is
// answered with a give-up result and terminated, and the coordinator halves
// it like any batch that keeps failing.
//
// The job's ID is in every subject, so a coordinator killed mid-job and
// started again with the same ID resumes: it drops the job's unacknowledged
// batches, reads back which ranges already have results, takes those from
// the results stream instead of computing them again, and sends the rest.
// Every document is still written exactly once, in order.
//
// It costs, per batch, two stream writes (batch and result, each waiting
// for the server's ack) and a pull, against one request/reply; the report
// shows both side by side when dispatch lists both.
type JetStream struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	codec   proto.Codec
	cfg     Config
	job     string
	nonce   string // this run, in publish IDs, so re-sends are not de-duplicated away
	ackWait time.Duration
	log     *slog.Logger

	batches jetstream.Stream
	results jetstream.Stream
	workers jetstream.Consumer // the workers' shared consumer, watched for "no workers"

	mu      sync.Mutex
	pending map[string]*jsTask // batches sent and not answered, by batch subject
	stored  map[int64]int      // results found in the stream, not yet used: first document -> count
	changed chan struct{}      // closed and replaced when pending shrinks
	sends   atomic.Uint64
	resumed atomic.Int64
	buf     []byte
}

type jsTask struct {
	t      *Task
	sent   time.Time
	encode time.Duration
	bytes  int
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
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ackWait := cfg.BatchTimeout
	if ackWait == 0 {
		ackWait = 2 * cfg.TimeoutFloor // live workers heartbeat every AckWait/3
	}
	return &JetStream{
		nc: nc, js: js, codec: c, cfg: cfg, job: job, nonce: nuid.Next(), ackWait: ackWait, log: log,
		pending: map[string]*jsTask{}, stored: map[int64]int{}, changed: make(chan struct{}),
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
	if err := j.setup(ctx); err != nil {
		return err
	}
	from, err := j.index(ctx)
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
	var noWorkers error
	wg.Add(1)
	go func() { // owned by Run: ends with ctx
		defer wg.Done()
		if err := j.watchWorkers(ctx); err != nil {
			noWorkers = err
			cancel()
		}
	}()
	for {
		t, err := q.Next(ctx)
		switch {
		case errors.Is(err, ErrDone):
			j.finish()
			return nil
		case errors.Is(err, ErrStopped):
			j.awaitPending(ctx)
			return ErrStopped
		case err != nil:
			cancel()
			wg.Wait()
			if noWorkers != nil {
				return noWorkers
			}
			return err
		}
		if err := j.dispatch(ctx, q, t); err != nil {
			cancel()
			wg.Wait()
			if noWorkers != nil {
				return noWorkers
			}
			return err
		}
	}
}

// watchWorkers says once when batches wait and no worker is pulling (the
// consumer has neither waiting pulls nor unacknowledged batches for three
// checks a second apart), says again when workers are back, and returns
// ErrNoWorkers after WorkerWait without any. The batches stay queued: the
// job can be resumed with its ID. It returns nil when ctx ends.
func (j *JetStream) watchWorkers(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	idle := 0
	var alone time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		j.mu.Lock()
		waiting := len(j.pending) > 0
		j.mu.Unlock()
		info, err := j.workers.Info(ctx)
		if err != nil {
			continue // the broker may be restarting
		}
		if !waiting || info.NumWaiting > 0 || info.NumAckPending > 0 {
			if !alone.IsZero() {
				j.log.Info("workers pulling batches again; resuming", "after", time.Since(alone).Round(time.Millisecond))
			}
			idle, alone = 0, time.Time{}
			continue
		}
		switch idle++; {
		case idle == 3:
			alone = time.Now()
			j.log.Warn("no workers pulling batches; waiting (are workers running with --dispatch jetstream?)", "up_to", j.cfg.WorkerWait)
		case idle > 3 && time.Since(alone) > j.cfg.WorkerWait:
			return fmt.Errorf("%w: none pulled batches for %s; the job's batches stay queued (job %s)", ErrNoWorkers, j.cfg.WorkerWait, j.job)
		}
	}
}

// setup creates or updates the two streams and the workers' consumer.
func (j *JetStream) setup(ctx context.Context) error {
	var err error
	j.batches, err = j.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        proto.BatchStream,
		Description: "ferry batches waiting for a worker (work queue: removed on ack)",
		Subjects:    []string{proto.BatchSubjectPrefix + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
	})
	if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
		return ErrNoJetStream
	}
	if err != nil {
		return fmt.Errorf("jetstream: batch stream: %w", err)
	}
	j.results, err = j.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              proto.ResultStream,
		Description:       "ferry results by job and document range",
		Subjects:          []string{proto.ResultSubjectPrefix + ".>"},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		MaxMsgsPerSubject: 1,
		MaxAge:            resultsMaxAge,
		Duplicates:        2 * time.Minute,
		AllowDirect:       true,
	})
	if err != nil {
		return fmt.Errorf("jetstream: result stream: %w", err)
	}
	j.workers, err = j.js.CreateOrUpdateConsumer(ctx, proto.BatchStream, jetstream.ConsumerConfig{
		Durable:       proto.WorkerConsumer,
		Description:   "ferry workers: one batch at a time each",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       j.ackWait,
		MaxDeliver:    j.cfg.MaxAttempts + 3, // the delivery after MaxAttempts gives up; a few spare
		FilterSubject: proto.BatchSubjectPrefix + ".>",
		MaxAckPending: -1,
	})
	if err != nil {
		return fmt.Errorf("jetstream: workers' consumer: %w", err)
	}
	return nil
}

// index drops the job's batches a previous run left unacknowledged (they
// are sent again unless their result is already stored) and lists the
// ranges whose results are stored. It returns the results stream sequence
// to follow live results from: taken before the listing, so a result is
// either listed or delivered (or both, harmlessly).
func (j *JetStream) index(ctx context.Context) (uint64, error) {
	if err := j.batches.Purge(ctx, jetstream.WithPurgeSubject(proto.BatchSubjectPrefix+"."+j.job+".>")); err != nil {
		return 0, fmt.Errorf("jetstream: drop the job's stale batches: %w", err)
	}
	info, err := j.results.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("jetstream: result stream info: %w", err)
	}
	from := info.State.LastSeq + 1
	info, err = j.results.Info(ctx, jetstream.WithSubjectFilter(proto.ResultSubjectPrefix+"."+j.job+".>"))
	if err != nil {
		return 0, fmt.Errorf("jetstream: list the job's results: %w", err)
	}
	for subj := range info.State.Subjects {
		if _, first, n, err := proto.ParseBatchSubject(subj); err == nil {
			j.stored[first] = n
		}
	}
	return from, nil
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
		if n, ok := j.stored[i]; ok && i+int64(n) <= end {
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
			j.log.Warn("stored result unusable; computing it again", "first", p.first, "err", err)
			if err := j.send(ctx, q, sub); err != nil {
				return err
			}
		}
	}
	return nil
}

// resume completes t from its stored result.
func (j *JetStream) resume(ctx context.Context, q *Queue, t *Task) error {
	subj := proto.ResultSubject(j.job, t.Batch.First, len(t.Batch.Docs))
	m, err := j.results.GetLastMsgForSubject(ctx, subj)
	if err != nil {
		return err
	}
	if why := m.Header.Get(proto.HeaderError); why != "" {
		// Anyone with a worker login may publish a give-up, and the token
		// of a previous run's batch is gone: compute it again instead.
		return fmt.Errorf("a stored give-up is not taken on trust: %s", why)
	}
	codec, err := j.codecFor(m.Header)
	if err != nil {
		return err
	}
	res := &proto.Result{}
	if err := codec.DecodeResult(m.Data, res); err != nil {
		return err
	}
	res.BatchID, res.Attempt = t.Batch.ID, t.Batch.Attempt // the range is the key; IDs are per run
	j.resumed.Add(1)
	q.Complete(t, Result{Res: res, BytesIn: len(m.Data)}) // no worker: nothing computed in this run
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
	msg := &nats.Msg{Subject: subj, Data: j.buf, Header: nats.Header{
		proto.HeaderCodec:       {j.codec.Name()},
		proto.HeaderMaxAttempts: {strconv.Itoa(j.cfg.MaxAttempts)},
		proto.HeaderToken:       {t.Batch.Token.String()},
	}}
	p := &jsTask{t: t, encode: time.Since(t0), bytes: len(j.buf)}
	j.mu.Lock()
	j.pending[subj] = p // before the publish: a fast worker may answer before the ack
	j.mu.Unlock()
	// One ID for every try of this send: a try that reached the stream but
	// lost its ack is not stored twice.
	id := j.nonce + "-" + strconv.FormatUint(j.sends.Add(1), 10)
	for try := 0; ; try++ {
		p.sent = time.Now()
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := j.js.PublishMsg(pctx, msg, jetstream.WithMsgID(id))
		cancel()
		if err == nil {
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

// onResult matches a result from the results stream to its batch.
func (j *JetStream) onResult(q *Queue, m jetstream.Msg) {
	_, first, n, err := proto.ParseBatchSubject(m.Subject())
	if err != nil {
		return
	}
	subj := proto.BatchSubject(j.job, first, n)
	j.mu.Lock()
	p := j.pending[subj]
	switch {
	case p != nil && m.Headers().Get(proto.HeaderToken) == p.t.Batch.Token.String():
		delete(j.pending, subj)
		close(j.changed)
		j.changed = make(chan struct{})
	case p == nil && q.col.discardIfDone(first, n):
		// A batch run twice (redelivered while its first worker was only
		// slow, or answered both before and after a resume): written once.
	default:
		// Not the token of the batch in flight, or no batch in flight
		// (a forgery, or a previous run's batch finishing late, which is
		// computed again): dropped.
		defer q.DiscardForged(1)
		p = nil
	}
	j.mu.Unlock()
	if p == nil {
		return
	}
	h := m.Headers()
	if why := h.Get(proto.HeaderError); why != "" {
		j.fail(q, p.t, why)
		return
	}
	if d, _ := strconv.Atoi(h.Get(proto.HeaderDelivery)); d > 1 {
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
	// Transport here includes waiting in the stream for a free worker.
	r.Timing[StageTransport] = max(t0.Sub(p.sent)-r.Timing.Busy(), 1)
	r.Timing[StageDecode] = decode
	q.Complete(p.t, r)
}

// fail handles a give-up result: split a batch whose result is too large,
// halve (or, for one document, fail) a batch that kept failing.
func (j *JetStream) fail(q *Queue, t *Task, why string) {
	if strings.HasPrefix(why, "413") {
		q.Split(t)
		return
	}
	q.GiveUp(t, errors.New(why))
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

// finish drops the finished job's results: the output is written, and a
// run with the same ID would be a new job.
func (j *JetStream) finish() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := j.results.Purge(ctx, jetstream.WithPurgeSubject(proto.ResultSubjectPrefix+"."+j.job+".>")); err != nil {
		j.log.Warn("purge the finished job's results", "job_id", j.job, "err", err)
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
