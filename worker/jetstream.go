package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ferrylab/ferry/proto"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// consumeJetStream serves batches from the FERRY_BATCHES work queue
// (dispatch=jetstream) until ctx ends: pull one batch, compute it, publish
// its result to FERRY_RESULTS and wait for the stream to store it, then ack
// the batch. A worker that dies before the ack has its batch redelivered to
// another after AckWait; one that dies between the two makes a duplicate
// result, which the results stream's de-duplication (message ID) and the
// coordinator's collector both drop.
//
// While a batch is computed, and while the next one waits its turn (one is
// fetched ahead so the worker never idles on a round trip), the worker tells
// the server it is still working (InProgress) every AckWait/3: only a dead
// or paused worker's batches are redelivered. On ctx's end the fetched-ahead
// batch is handed back (Nak) and the one in hand is finished and acked.
//
// A delivery past the batch's Ferry-Max-Attempts is not computed: the
// earlier ones died with their workers, so the worker publishes a give-up
// result ("poison: ...") and terminates the message; a batch it cannot
// decode, or whose result is over the payload limit, likewise ("400 ...",
// "413 ..."). The coordinator halves such batches.
func (w *Worker) consumeJetStream(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := w.waitConsumer(ctx, js)
	if err != nil {
		return err
	}
	next := make(chan jetstream.Msg)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the fetcher; owned here, ends with ctx
		defer wg.Done()
		defer close(next)
		w.fetch(ctx, cons, next)
	}()
	defer wg.Wait()
	for m := range next {
		w.handleJetStream(js, m, ackWait(cons))
	}
	return nil
}

// waitConsumer binds to the shared consumer, which the coordinator creates;
// a worker started first waits for it.
func (w *Worker) waitConsumer(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	said := false
	for {
		cons, err := js.Consumer(ctx, proto.BatchStream, proto.WorkerConsumer)
		if err == nil {
			w.log.Info("consuming jetstream batches", "stream", proto.BatchStream, "consumer", proto.WorkerConsumer)
			return cons, nil
		}
		if !said {
			w.log.Info("waiting for the batch stream (a coordinator with dispatch=jetstream creates it)", "err", err)
			said = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func ackWait(cons jetstream.Consumer) time.Duration {
	if info := cons.CachedInfo(); info != nil && info.Config.AckWait > 0 {
		return info.Config.AckWait
	}
	return 30 * time.Second // the server's default
}

// fetch pulls one batch at a time and holds it, heartbeating, until the
// compute loop takes it.
func (w *Worker) fetch(ctx context.Context, cons jetstream.Consumer, next chan<- jetstream.Msg) {
	refreshed := time.Now()
	for ctx.Err() == nil {
		if time.Since(refreshed) > 5*time.Second {
			// A later coordinator may have changed AckWait: heartbeats follow.
			_, _ = cons.Info(ctx)
			refreshed = time.Now()
		}
		// Short pulls: one lost with a restarting broker costs seconds, not
		// the default 30.
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		m, err := cons.Next(jetstream.FetchContext(fctx))
		cancel()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
				w.log.Debug("fetch batch", "err", err)
				select { // the broker may be restarting
				case <-ctx.Done():
				case <-time.After(250 * time.Millisecond):
				}
			}
			continue
		}
		beat := time.NewTicker(ackWait(cons) / 3)
	hold:
		for {
			select {
			case next <- m:
				break hold
			case <-beat.C:
				_ = m.InProgress()
			case <-ctx.Done():
				_ = m.Nak() // give it back at once rather than after AckWait
				break hold
			}
		}
		beat.Stop()
	}
}

// handleJetStream computes one batch message and publishes its result.
func (w *Worker) handleJetStream(js jetstream.JetStream, m jetstream.Msg, wait time.Duration) {
	meta, err := m.Metadata()
	if err != nil {
		_ = m.TermWithReason("400 not a jetstream message")
		return
	}
	job, first, n, err := proto.ParseBatchSubject(m.Subject())
	if err != nil {
		_ = m.TermWithReason("400 " + err.Error()) // not ours: no result subject to answer on
		return
	}
	result := proto.ResultSubject(job, first, n)
	if limit, _ := strconv.ParseUint(m.Headers().Get(proto.HeaderMaxAttempts), 10, 64); limit > 0 && meta.NumDelivered > limit {
		// Earlier deliveries neither answered nor came back: the batch kills
		// or hangs whoever takes it. Say so durably and terminate it; the
		// coordinator halves it to isolate the bad document.
		w.giveUp(js, m, result, meta, fmt.Sprintf("poison: delivered %d times without a result", meta.NumDelivered-1))
		return
	}
	// The batch goes through the same handler as a request, so both
	// dispatches compute, time and answer a batch the same way.
	req := &streamRequest{m: m, out: &nats.Msg{Subject: result}}
	stop := heartbeat(m, wait/3)
	w.handle(req)
	stop()
	if req.code != "" {
		// A bad batch or a too-large result is not cured by redelivery.
		w.log.Warn("batch rejected", "subject", m.Subject(), "code", req.code, "err", req.desc)
		w.giveUp(js, m, result, meta, req.code+" "+req.desc)
		return
	}
	if w.publish(js, m, req.out, meta) {
		if err := m.Ack(); err != nil {
			w.log.Debug("ack batch", "subject", m.Subject(), "err", err)
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
	out := &nats.Msg{Subject: subject, Header: nats.Header{proto.HeaderError: {why}, proto.HeaderWorker: {w.cfg.Name}}}
	if w.publish(js, m, out, meta) {
		_ = m.TermWithReason(why)
	}
}

// publish stores out in the results stream, or hands m back for redelivery.
func (w *Worker) publish(js jetstream.JetStream, m jetstream.Msg, out *nats.Msg, meta *jetstream.MsgMetadata) bool {
	out.Header.Set(proto.HeaderCodec, m.Headers().Get(proto.HeaderCodec))
	out.Header.Set(proto.HeaderDelivery, strconv.FormatUint(meta.NumDelivered, 10))
	out.Header.Set(proto.HeaderWorker, w.cfg.Name) // who computed it: the coordinator's busy time
	tok := m.Headers().Get(proto.HeaderToken)
	out.Header.Set(proto.HeaderToken, tok) // the coordinator takes no result without it
	// The message ID makes a second execution of the same stream message a
	// no-op in the results stream; the token in it keeps anyone who did not
	// receive the batch from taking the ID first.
	id := out.Subject + "#" + strconv.FormatUint(meta.Sequence.Stream, 10) + "#" + tok
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

// heartbeat tells the server every d that m is still being worked on,
// until the returned stop is called.
func heartbeat(m jetstream.Msg, d time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
