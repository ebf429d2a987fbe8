// Package worker is ferry's worker process: it registers as the NATS micro
// service "ferry-worker", decodes each batch it is sent, computes it with a
// workload, encodes the result and replies with its own stage timings.
// It is importable so tests and benchmarks can run workers in-process; the
// `ferry worker` command is a thin wrapper. It does not pick work: the
// coordinator decides which worker gets which batch.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/ferrylab/ferry/internal/spawn"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/workload"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"golang.org/x/sync/semaphore"
)

// ErrParentGone is returned by Run when the parent process that started
// this worker has exited: a worker never outlives `ferry run`.
var ErrParentGone = errors.New("worker: parent process exited")

// Config configures a worker. The zero value of every field is its default.
type Config struct {
	URL       string        // NATS URL(s), comma separated; "" = nats://127.0.0.1:4222
	Name      string        // connection name shown by the broker and key of busy fractions; "" = ferry-worker-<host>-<pid>
	Limits    proto.Limits  // bounds on decoded batches
	ParentPID int           // exit when this process is no longer our parent; 0 = don't watch
	Auth      natsconn.Auth // credentials and TLS; zero = anonymous
	Logger    *slog.Logger  // nil = discard
	// PendingLimit bounds the batches queued at each of this worker's batch
	// subscriptions, behind the up to 16 received and stamped ones waiting
	// to be computed (queueLen); 0 = 64 (proto.MaxInFlight), the most in
	// flight a coordinator sends one worker. Beyond the limit NATS drops messages (logged as a slow
	// consumer) and the coordinator's deadline re-sends them.
	PendingLimit int
	// PendingBytes bounds the bytes queued at each batch subscription, so a
	// flood cannot grow the worker's memory; 0 = 64 MiB (16 batches of the
	// largest size a coordinator sends at the default 8 MiB max payload).
	PendingBytes int
	// BeforeBatch, when set, is called with each decoded batch before it is
	// computed. It is a test hook: `ferry worker` sets it from the
	// FERRY_TEST_CRASH_ON environment variable to make the process die on a
	// given document, which is how the fault tests prove crash isolation.
	// nil = none.
	BeforeBatch func(b *proto.Batch)
	// JetStream also serves batches from the FERRY_BATCHES work-queue stream
	// (dispatch=jetstream), besides requests. Default off.
	JetStream bool
	// Shm, when set, also serves batches over shared memory (a local
	// fleet's --data-plane shm; ShmFromEnv); nil = NATS only.
	Shm *ShmConfig
	// Observe, when set, is told when each batch starts and how it ended
	// (live metrics). It must be quick.
	Observe func(Event)
}

// Event is one batch at this worker: Start when it begins, then one more
// when it is answered.
type Event struct {
	Start  bool
	Docs   int    // documents in the batch; 0 when it did not decode
	Failed int    // documents the workload failed on
	Code   string // micro error code of the reply ("400", "413", "500"); "" = ok

	Queue, Decode, Compute, Encode time.Duration
}

// Worker is one worker: one NATS connection, one micro service, one batch
// computed at a time (a worker stands for one core).
type Worker struct {
	cfg    Config
	codecs map[string]proto.Codec
	zipped map[string]proto.Codec // the codecs with s2, for batches sent compressed
	wls    workload.Cache
	log    *slog.Logger

	nc    *nats.Conn
	ready atomic.Pointer[nats.Conn] // set once the service is registered

	// The batches serve received, stamped, waiting for the computing
	// goroutine (owned by Run); room bounds their bytes.
	queue    chan arrival
	room     *semaphore.Weighted
	roomSize int64
	smu      sync.Mutex    // guards stopping and sends on queue
	stopping bool          // set on the way out: queue is closed, serve computes in place
	drained  chan struct{} // closed when the computing goroutine has answered the last queued batch

	mu     sync.Mutex // one batch at a time; guards the scratch below
	b      proto.Batch
	res    proto.Result
	buf    []byte
	stages []byte        // HeaderStagesNs value being built
	header micro.Headers // the reply's headers, rewritten per batch
}

// New validates cfg and returns a worker ready to Run.
func New(cfg Config) (*Worker, error) {
	if cfg.URL == "" {
		cfg.URL = nats.DefaultURL
	}
	if cfg.Name == "" {
		// The host too: in containers every worker is PID 1.
		host, _ := os.Hostname()
		cfg.Name = fmt.Sprintf("ferry-worker-%s-%d", host, os.Getpid())
	}
	if cfg.PendingLimit <= 0 {
		cfg.PendingLimit = proto.MaxInFlight
	}
	if cfg.PendingBytes <= 0 {
		cfg.PendingBytes = 64 << 20
	}
	w := &Worker{cfg: cfg, codecs: map[string]proto.Codec{}, log: cfg.Logger}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	for _, name := range proto.CodecNames() {
		c, err := proto.NewCodec(name, cfg.Limits)
		if err != nil {
			return nil, err
		}
		w.codecs[name] = c
	}
	return w, nil
}

// Run connects, serves batches until ctx is done, the parent exits or the
// connection is closed for good, then stops gracefully: stop taking work
// (the micro service drains its subscriptions, so a batch already handed to
// this worker is finished and answered), then drain the connection.
func (w *Worker) Run(ctx context.Context) error {
	closed := make(chan struct{})
	opts, err := natsconn.Options(w.cfg.Name, w.cfg.Auth, w.log)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	// The login names this worker's subjects: its batches come on
	// ferry.work.<login>.<id>, its inbox is _INBOX.<login>.
	login, err := natsconn.Login(w.cfg.URL, w.cfg.Auth)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	opts = append(opts, natsconn.InboxPrefix(login), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	nc, err := nats.Connect(w.cfg.URL, opts...)
	if err != nil {
		return fmt.Errorf("worker: connect to %s: %w", natsconn.Redact(w.cfg.URL), err)
	}
	defer nc.Close()
	defer w.wls.Close() // after the last batch: workloads holding resources (io.Closer) let go
	w.nc = nc
	// A compressed batch may decompress to at most what a plain one could carry.
	w.zipped = map[string]proto.Codec{}
	for name, c := range w.codecs {
		if w.zipped[name], err = proto.NewCompressed(c, proto.CompressS2, int(nc.MaxPayload())); err != nil {
			return fmt.Errorf("worker: %w", err)
		}
	}

	svc, err := micro.AddService(nc, micro.Config{
		Name:        proto.ServiceName,
		Version:     proto.ServiceVersion,
		Description: "ferry batch worker: decode, compute, encode, reply",
		Metadata:    map[string]string{"pid": strconv.Itoa(os.Getpid())},
	})
	if err != nil {
		return fmt.Errorf("worker: register service: %w", err)
	}
	id := svc.Info().ID
	if w.cfg.Shm != nil { // hello before the batch endpoint: discovery finds the worker after its hello
		plane, err := w.openShm(id)
		if err != nil {
			w.log.Warn("shared memory unavailable; serving over NATS only", "err", err)
		} else {
			go w.serveShm(plane) // owned: plane.stop waits for it
			defer plane.stop()
		}
	}
	subject := proto.WorkSubject(proto.WorkAddr(login, id))
	w.startQueue()
	defer w.stopQueue() // on every return path, before the connection closes
	handler := micro.HandlerFunc(w.serve)
	limits := micro.WithEndpointPendingLimits(w.cfg.PendingLimit, w.cfg.PendingBytes)
	if err := svc.AddEndpoint("batch", handler, micro.WithEndpointSubject(subject),
		micro.WithEndpointQueueGroupDisabled(), limits); err != nil {
		return fmt.Errorf("worker: add endpoint: %w", err)
	}
	if err := svc.AddEndpoint("any", handler, micro.WithEndpointSubject(proto.WorkQueueSubject),
		micro.WithEndpointQueueGroup(proto.WorkQueueGroup), limits); err != nil {
		return fmt.Errorf("worker: add endpoint: %w", err)
	}
	w.ready.Store(nc)
	w.log.Info("worker ready", "id", id, "subject", subject, "nats", nc.ConnectedUrlRedacted())

	// The JetStream consumer gets its own context: it must stop (and finish
	// the batch in hand) before the connection is drained.
	jsCtx, stopJS := context.WithCancel(context.WithoutCancel(ctx))
	jsDone := make(chan struct{})
	// ErrHung: a batch cannot be stopped, so the worker exits.
	hung := make(chan error, 1)
	go func() { // owned: every return path below waits on jsDone
		defer close(jsDone)
		if w.cfg.JetStream {
			err := w.consumeJetStream(jsCtx, nc)
			switch {
			case errors.Is(err, ErrHung):
				hung <- err
			case err != nil && jsCtx.Err() == nil:
				w.log.Error("jetstream consumer", "err", err)
			}
		}
	}()
	defer func() { stopJS(); <-jsDone }()

	parentGone := spawn.WatchParent(ctx, w.cfg.ParentPID)
	var runErr error
	select {
	case <-ctx.Done():
	case <-parentGone:
		runErr = ErrParentGone
	case runErr = <-hung:
	case <-closed:
		return errors.New("worker: nats connection closed")
	}
	// Shutdown order: stop pulling from the batch stream and finish the
	// batch in hand; stop taking requests and finish in-flight batches (Stop
	// drains the endpoint subscriptions); then flush and close.
	stopJS()
	<-jsDone
	w.stopQueue()
	if err := svc.Stop(); err != nil {
		w.log.Warn("stop service", "err", err)
	}
	if err := nc.Drain(); err == nil {
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
		}
	}
	w.log.Info("worker stopped", "id", id)
	return runErr
}

// Ready reports whether the worker is registered and connected to NATS:
// what a container healthcheck asks.
func (w *Worker) Ready() error {
	nc := w.ready.Load()
	if nc == nil {
		return errors.New("worker: not registered yet")
	}
	if st := nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("worker: nats connection %s", st)
	}
	return nil
}

// arrival is a batch serve received, and when.
type arrival struct {
	req  *handedRequest
	at   time.Time
	size int64 // what it holds of room
}

// queueLen is how many received batches may wait for the computing
// goroutine: their waits are measured (the queue stage); more wait in the
// NATS pending list, unmeasured, until there is room. A coordinator sends
// one worker up to inflight batches: 2 by default, 16-64 for tiny ones.
const queueLen = 16

// startQueue starts the goroutine that computes the batches serve queues,
// one at a time, in arrival order.
func (w *Worker) startQueue() {
	w.queue, w.drained = make(chan arrival, queueLen), make(chan struct{})
	// The queued batches' bytes are bounded like the pending list's, so a
	// flood holds at most twice PendingBytes.
	w.roomSize = int64(w.cfg.PendingBytes)
	w.room = semaphore.NewWeighted(w.roomSize)
	go func() { // owned: stopQueue waits for it
		defer close(w.drained)
		for a := range w.queue {
			w.handle(a.req, a.at)
			w.room.Release(a.size)
		}
	}()
}

// stopQueue makes serve compute in place from now on, and waits until the
// batches already queued are answered: before the service stops and the
// connection drains.
func (w *Worker) stopQueue() {
	w.smu.Lock()
	if !w.stopping {
		w.stopping = true
		close(w.queue)
	}
	w.smu.Unlock()
	<-w.drained
}

// serve is the micro handler of both batch endpoints. It stamps the
// batch's arrival and queues it for the computing goroutine, returning at
// once: so the next batch on the subscription is received and stamped
// while this one computes (a coordinator keeps inflight batches at each
// worker), and its wait is the queue stage instead of an unmeasured stay in
// the NATS pending list. Once the worker is stopping it computes in place,
// so draining the subscriptions waits for every batch.
//
// With one P (OneCore) a batch that comes while a CPU-bound one computes is
// read from the socket only when the scheduler next runs the reader: after
// the compute or a preemption (about 10ms). That wait is not seen here and
// stays in transport; a compute that sleeps or waits (sleep, exec) frees the P.
func (w *Worker) serve(req micro.Request) {
	at := time.Now()
	w.smu.Lock()
	if w.stopping {
		w.smu.Unlock()
		w.handle(req, at)
		return
	}
	// Held while waiting for room: the computing goroutine makes it, and
	// stopQueue waits for the send.
	defer w.smu.Unlock()
	size := min(int64(len(req.Data())), w.roomSize)
	_ = w.room.Acquire(context.Background(), size) // never fails without a deadline
	w.queue <- arrival{req: handOff(w.nc, req), at: at, size: size}
}

// handle serves one batch that arrived at the worker at arrived; its queue
// stage ends when it holds the worker. Every failure is answered with a
// micro error reply; nothing a client sends can crash the worker.
func (w *Worker) handle(req micro.Request, arrived time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	queue := max(time.Since(arrived), 0)
	var ev Event
	if obs := w.cfg.Observe; obs != nil {
		obs(Event{Start: true})
		defer func() { obs(ev) }()
	}
	// An error reply carries the batch's token, so the coordinator can tell
	// it from a forgery; a batch that did not decode that far has none.
	w.b.Token = proto.Token{}
	fail := func(code, msg string) {
		ev.Code = code
		_ = req.Error(code, msg, nil, micro.WithHeaders(micro.Headers{proto.HeaderToken: {w.b.Token.String()}}))
	}
	codecName := req.Headers().Get(proto.HeaderCodec)
	if codecName == "" {
		codecName = proto.CodecPacked
	}
	codec, ok := w.codecs[codecName]
	if !ok {
		fail("400", fmt.Sprintf("unknown codec %q", codecName))
		return
	}
	var replyHeader []string // HeaderCompress of the reply: as the batch came
	switch z := req.Headers().Get(proto.HeaderCompress); z {
	case proto.CompressNone:
	case proto.CompressS2:
		codec, replyHeader = w.zipped[codecName], []string{z}
	default:
		fail("400", fmt.Sprintf("unknown compression %q", z))
		return
	}
	sv := w.runBatch(codec, req.Data(), w.buf[:0], w.nc.MaxPayload())
	if sv.out != nil {
		w.buf = sv.out
	}
	if sv.code != "" {
		fail(sv.code, sv.msg)
		return
	}
	h := w.replyHeader(queue, sv.decode, sv.compute, sv.encode, sv.pipe, replyHeader)
	// The broker's limit is on headers and body together (HPUB).
	if size, max := len(w.buf)+proto.HeaderSize(h), w.nc.MaxPayload(); int64(size) > max {
		fail("413", fmt.Sprintf("result of %d bytes for %d documents is over the broker's max_payload of %d", size, len(w.b.Docs), max))
		return
	}
	ev = sv.event(len(w.b.Docs), len(w.res.Errs))
	ev.Queue = queue
	if err := req.Respond(w.buf, micro.WithHeaders(h)); err != nil {
		w.log.Warn("reply", "batch", w.b.ID, "err", err)
	}
	w.b.Docs = w.b.Docs[:0] // drop references into the message
}

// served is how one batch went: the encoded result (out), or a micro
// error code and message; and the worker's stages.
type served struct {
	out                           []byte
	code, msg                     string
	decode, compute, encode, pipe time.Duration
}

func (s served) event(docs, failed int) Event {
	return Event{Docs: docs, Failed: failed, Decode: s.decode, Compute: s.compute + s.pipe, Encode: s.encode}
}

// runBatch decodes one batch from data with codec, computes it and appends
// the result to out, whatever carried the batch (NATS or shared memory).
// maxResult bounds the result's size (the broker's max payload, or the
// shared-memory slot). The caller holds w.mu.
func (w *Worker) runBatch(codec proto.Codec, data, out []byte, maxResult int64) (s served) {
	w.b.Token = proto.Token{}
	t0 := time.Now()
	if err := codec.DecodeBatch(data, &w.b); err != nil {
		return served{code: "400", msg: err.Error()}
	}
	t1 := time.Now()
	if w.cfg.BeforeBatch != nil {
		w.cfg.BeforeBatch(&w.b)
	}
	wl, err := w.cfg.Limits.Workload(&w.wls, &w.b, maxResult) // the result's size is checked before compute
	if errors.Is(err, proto.ErrLimit) {
		return served{code: "413", msg: err.Error()}
	}
	if err != nil {
		return served{code: "400", msg: err.Error()}
	}
	w.res.BatchID, w.res.Attempt, w.res.Token = w.b.ID, w.b.Attempt, w.b.Token
	w.res.Errs, err = workload.ComputeBatch(wl, w.b.Docs, &w.res.Out, w.res.Errs)
	if err != nil { // not the documents' fault (an exec program died): retried elsewhere
		return served{code: "500", msg: err.Error()}
	}
	t2 := time.Now()
	out, err = codec.AppendResult(out, &w.res)
	if errors.Is(err, proto.ErrLimit) {
		return served{out: out, code: "413", msg: fmt.Sprintf("result: %v; use smaller batches", err)}
	}
	if err != nil {
		return served{out: out, code: "500", msg: err.Error()}
	}
	t3 := time.Now()
	pipe := w.res.Out.Hop
	return served{out: out, decode: t1.Sub(t0), compute: t2.Sub(t1) - pipe, encode: t3.Sub(t2), pipe: pipe}
}

// replyHeader fills the reply's headers: the stage timings in one header,
// the worker's name, and the compression when the batch came compressed. The map is reused;
// Respond encodes it before the next batch is handled.
func (w *Worker) replyHeader(queue, decode, compute, encode, pipe time.Duration, compress []string) micro.Headers {
	if w.header == nil {
		w.header = micro.Headers{}
	}
	b := proto.AppendPipeStage(proto.AppendStages(w.stages[:0], decode, compute, encode), pipe)
	b = proto.AppendQueueStage(b, pipe, queue)
	w.stages = b
	w.header[proto.HeaderStagesNs] = []string{string(b)}
	w.header[proto.HeaderWorker] = []string{w.cfg.Name} // who answered, for tools watching the wire
	if compress != nil {
		w.header[proto.HeaderCompress] = compress
	} else {
		delete(w.header, proto.HeaderCompress)
	}
	return w.header
}
