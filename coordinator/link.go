package coordinator

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/ferrylab/ferry/proto"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
)

// Errors of a round trip that the processes backend treats specially.
var (
	errGone     = errors.New("worker gone") // no responders: the worker is not attached
	errTooLarge = errors.New("over the payload limit")
	errDeadline = errors.New("no reply in time")
)

// Link is one lane's line to one worker: it encodes a batch, sends it to the
// worker's own subject, waits for the reply and decodes it, timing each
// stage. It is the whole per-batch cost of processes mode on the
// coordinator side, and what `ferry bench transport` measures against a raw
// NATS echo.
//
// A Link has a reply subscription of its own, so a reply goes from the
// connection's reader straight to the waiting lane. nats.go's Request
// shares one reply subscription per connection and hands each reply to a
// second goroutine, a map lookup and a per-request channel and context
// before the requester sees it, and its reply subject is new on every
// request, which misses the broker's subject cache each time. A Link keeps
// one reply subject until a request goes unanswered, then moves to a new
// one, so a late reply is recognised by its subject and dropped.
//
// Every send carries a new Token, drawn from a ChaCha8 stream seeded from
// crypto/rand (no system call per batch). A message on the reply subject
// that does not carry it back (a forgery, or a reply whose body does not
// decode) is dropped and counted in Result.Forged, and the Link waits on
// for the worker's own reply until the deadline.
//
// A Link is used by one goroutine at a time.
type Link struct {
	nc      *nats.Conn
	worker  string      // the worker's address: <login>.<micro instance ID>
	codec   proto.Codec // encodes batches; decodes compressed replies
	plain   proto.Codec // decodes uncompressed replies
	subject string
	inbox   string // reply subjects are inbox.<gen>
	reply   string // the current reply subject
	gen     uint64
	sub     *nats.Subscription
	replies chan *nats.Msg
	header  nats.Header // nil for the default codec: a plain PUB is cheaper
	buf     []byte
	timer   *time.Timer
	tokens  *rand.ChaCha8
}

// The status header NATS puts on a reply when no one serves the subject.
const (
	statusHeader = "Status"
	noResponders = "503"
)

// NewLink opens a line to the worker at addr (what Discover returns). Its
// reply subjects name the worker's login (proto.ReplyInbox), the only
// replies a broker with ferry's roles lets that login publish.
func NewLink(nc *nats.Conn, codec proto.Codec, addr string) (*Link, error) {
	var seed [32]byte
	crand.Read(seed[:])
	l := &Link{
		nc: nc, worker: addr, codec: codec, subject: proto.WorkSubject(addr),
		inbox:   proto.ReplyInbox(inboxPrefix(nc), proto.AddrLogin(addr)) + "." + nuid.Next(),
		replies: make(chan *nats.Msg, 8), // one reply in flight, plus late ones to discard
		timer:   time.NewTimer(time.Hour),
		tokens:  rand.NewChaCha8(seed),
	}
	l.timer.Stop()
	l.reply = l.inbox + ".0"
	l.plain = codec
	if z, ok := codec.(*proto.Compressed); ok {
		l.plain = z.Unwrap()
		l.header = nats.Header{proto.HeaderCompress: {z.Compression()}}
	}
	if codec.Name() != proto.CodecPacked {
		if l.header == nil {
			l.header = nats.Header{}
		}
		l.header[proto.HeaderCodec] = []string{codec.Name()}
	}
	sub, err := nc.ChanSubscribe(l.inbox+".*", l.replies)
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", l.inbox, err)
	}
	l.sub = sub
	return l, nil
}

// Codec is the codec the link encodes batches with.
func (l *Link) Codec() proto.Codec { return l.codec }

// Close ends the link's reply subscription.
func (l *Link) Close() error { return l.sub.Unsubscribe() }

// inboxPrefix is nc's reply inbox prefix, without the trailing dot.
func inboxPrefix(nc *nats.Conn) string {
	if p := nc.Opts.InboxPrefix; p != "" {
		return p
	}
	return strings.TrimSuffix(nats.InboxPrefix, ".")
}

// RoundTrip sends b with a new token (set in b.Token) and returns the
// worker's result, decoded into into (nil = a new Result), with the stage
// timings, or an error: errGone when no worker serves the subject,
// errTooLarge when the batch or its result is over the payload limit.
// Result.Forged counts the messages dropped for lacking the token, on
// errors too.
func (l *Link) RoundTrip(ctx context.Context, b *proto.Batch, into *proto.Result, timeout time.Duration) (r Result, err error) {
	t0 := time.Now()
	_, _ = l.tokens.Read(b.Token[:]) // never fails
	buf, err := l.codec.AppendBatch(l.buf[:0], b)
	l.buf = buf
	if errors.Is(err, proto.ErrLimit) {
		return r, fmt.Errorf("%v: %w", err, errTooLarge)
	}
	if err != nil {
		return r, err
	}
	if int64(len(buf)) > l.nc.MaxPayload() {
		return r, fmt.Errorf("batch of %d bytes: %w", len(buf), errTooLarge)
	}
	t1 := time.Now()
	if err := l.publish(buf); err != nil {
		return r, err
	}
	l.timer.Reset(timeout)
	defer l.timer.Stop()
	res := into
	if res == nil {
		res = new(proto.Result)
	}
	var m *nats.Msg
	var t2 time.Time
	for {
		if m, err = l.wait(ctx, timeout); err != nil {
			return r, err
		}
		t2 = time.Now()
		if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
			if m.Header.Get(proto.HeaderToken) != b.Token.String() {
				r.Forged++
				continue
			}
			msg := m.Header.Get(micro.ErrorHeader)
			if code == "413" {
				return r, fmt.Errorf("%s: %w", msg, errTooLarge)
			}
			return r, fmt.Errorf("worker error %s: %s", code, msg)
		}
		dec := l.plain
		if m.Header.Get(proto.HeaderCompress) != "" {
			dec = l.codec
		}
		if dec.DecodeResult(m.Data, res) != nil || res.Token != b.Token {
			r.Forged++
			continue
		}
		break
	}
	t3 := time.Now()
	r.Res, r.Worker, r.BytesOut, r.BytesIn = res, l.worker, len(buf), len(m.Data)
	r.Timing[StageEncode] = t1.Sub(t0)
	workerStages(m.Header, &r.Timing)
	r.Timing.boundQueue(t2.Sub(t1))
	r.Timing[StageTransport] = max(t2.Sub(t1)-r.Timing.AtWorker(), 1)
	r.Timing[StageDecode] = t3.Sub(t2)
	return r, nil
}

func (l *Link) publish(data []byte) error {
	if l.header == nil { // no Msg to allocate, no header to encode
		return l.nc.PublishRequest(l.subject, l.reply, data)
	}
	return l.nc.PublishMsg(&nats.Msg{Subject: l.subject, Reply: l.reply, Header: l.header, Data: data})
}

// wait returns the next message on the current reply subject, discarding
// late replies to earlier requests, until the timer RoundTrip set fires.
// When it returns without a message, the reply subject moves on, so the
// reply, if it ever comes, is discarded too.
func (l *Link) wait(ctx context.Context, timeout time.Duration) (*nats.Msg, error) {
	for {
		select {
		case m := <-l.replies:
			if m.Subject != l.reply {
				continue
			}
			if len(m.Data) == 0 && m.Header.Get(statusHeader) == noResponders {
				return nil, errGone
			}
			return m, nil
		case <-l.timer.C:
			l.rotate()
			return nil, fmt.Errorf("%w (%s)", errDeadline, timeout)
		case <-ctx.Done():
			l.rotate()
			return nil, ctx.Err()
		}
	}
}

func (l *Link) rotate() {
	l.gen++
	l.reply = l.inbox + "." + strconv.FormatUint(l.gen, 10)
}

// workerStages reads the worker's own stage timings from a reply's headers.
func workerStages(h nats.Header, t *Timing) {
	v := h.Get(proto.HeaderStagesNs)
	if v == "" { // an earlier worker: one header per stage
		t[StageWorkerDecode] = headerDur(h, proto.HeaderDecodeNs)
		t[StageCompute] = headerDur(h, proto.HeaderComputeNs)
		t[StageWorkerEncode] = headerDur(h, proto.HeaderEncodeNs)
		return
	}
	t[StageWorkerDecode], t[StageCompute], t[StageWorkerEncode] = proto.ParseStages(v)
	t[StagePipe] = proto.ParsePipeStage(v)
	t[StageQueue] = proto.ParseQueueStage(v)
}

func headerDur(h nats.Header, key string) time.Duration {
	v, err := strconv.ParseInt(h.Get(key), 10, 64)
	if err != nil || v < 0 {
		return 0
	}
	return time.Duration(v)
}
