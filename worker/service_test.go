package worker_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/worker"
	"github.com/ferrylab/ferry/workload"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// runWorker starts an in-process worker and returns its address (<login>.<id>).
func runWorker(t *testing.T, url string) string {
	t.Helper()
	w, err := worker.New(worker.Config{URL: url, Name: "test-worker"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })

	nc := natstest.Connect(t, url)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		// INFO, not PING: a worker answers pings a moment before its batch
		// endpoint subscribes; INFO lists the endpoint once it has.
		m, err := nc.Request("$SRV.INFO."+proto.ServiceName, nil, 200*time.Millisecond)
		if err == nil {
			var info micro.Info
			if json.Unmarshal(m.Data, &info) == nil && info.ID != "" {
				for _, e := range info.Endpoints {
					if addr, ok := proto.ParseWorkSubject(e.Subject, info.ID); ok {
						return addr
					}
				}
			}
		}
	}
	t.Fatal("worker never listed its batch endpoint in $SRV.INFO")
	return ""
}

func request(t *testing.T, nc *nats.Conn, id string, data []byte, codec string) *nats.Msg {
	t.Helper()
	msg := &nats.Msg{Subject: proto.WorkSubject(id), Data: data, Header: nats.Header{}}
	if codec != "" {
		msg.Header.Set(proto.HeaderCodec, codec)
	}
	reply, err := nc.RequestMsg(msg, 10*time.Second)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	return reply
}

func TestWorkerServesAndReportsTimings(t *testing.T) {
	_, url := natstest.NewServer(t)
	id := runWorker(t, url)
	nc := natstest.Connect(t, url)
	codec, _ := proto.NewCodec(proto.CodecPacked, proto.Limits{})
	b := proto.Batch{ID: 7, Attempt: 1, Workload: "embed", Docs: []string{"a ferry crosses", "the river"}}
	data, _ := codec.AppendBatch(nil, &b)
	reply := request(t, nc, id, data, proto.CodecPacked)
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
		t.Fatalf("error reply %s: %s", code, reply.Header.Get(micro.ErrorHeader))
	}
	var r proto.Result
	if err := codec.DecodeResult(reply.Data, &r); err != nil {
		t.Fatal(err)
	}
	if r.BatchID != 7 || r.Out.Dim != 384 || len(r.Out.Vecs) != 2*384 {
		t.Errorf("result = batch %d dim %d floats %d", r.BatchID, r.Out.Dim, len(r.Out.Vecs))
	}
	if reply.Header.Get(proto.HeaderWorker) == "" {
		t.Errorf("reply lacks header %s", proto.HeaderWorker)
	}
	// decode, compute, encode, pipe (0: not exec) and queue nanoseconds,
	// in one header
	stages := strings.Fields(reply.Header.Get(proto.HeaderStagesNs))
	if len(stages) != 5 || stages[3] != "0" {
		t.Fatalf("reply header %s = %q, want five durations, the pipe 0", proto.HeaderStagesNs, reply.Header.Get(proto.HeaderStagesNs))
	}
	for i, f := range stages {
		if ns, err := strconv.ParseInt(f, 10, 64); err != nil || ns < 0 || (i == 1 && ns == 0) || (i == 4 && ns == 0) {
			t.Errorf("stage %d = %q, want nanoseconds (compute and queue above zero)", i, f)
		}
	}
}

func TestWorkerAnswersBadInputWithErrorsAndKeepsServing(t *testing.T) {
	_, url := natstest.NewServer(t)
	id := runWorker(t, url)
	nc := natstest.Connect(t, url)
	codec, _ := proto.NewCodec(proto.CodecPacked, proto.Limits{})
	good, _ := codec.AppendBatch(nil, &proto.Batch{ID: 1, Workload: "embed", Docs: []string{"ok"}})
	unknown, _ := codec.AppendBatch(nil, &proto.Batch{ID: 2, Workload: "nope", Docs: []string{"x"}})
	for _, tc := range []struct {
		name, codec string
		data        []byte
		want        string
	}{
		{"garbage", "", []byte("not msgpack at all"), "400"},
		{"huge array header", "", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, "400"},
		{"truncated", "", good[:len(good)-1], "400"},
		{"unknown codec", "gob", good, "400"},
		{"unknown workload", "", unknown, "400"},
		{"msgpack garbage", proto.CodecMsgpack, []byte{0xc1}, "400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reply := request(t, nc, id, tc.data, tc.codec)
			if got := reply.Header.Get(micro.ErrorCodeHeader); got != tc.want {
				t.Errorf("error code = %q, want %q (%s)", got, tc.want, reply.Header.Get(micro.ErrorHeader))
			}
			// and it still serves a good batch
			ok := request(t, nc, id, good, "")
			if code := ok.Header.Get(micro.ErrorCodeHeader); code != "" {
				t.Errorf("after %s: good batch got error %s", tc.name, code)
			}
		})
	}
}

func TestWorkerRefusesResultsOverMaxPayload(t *testing.T) {
	b := natstest.NewBroker(t, broker.Options{MaxPayload: 64 << 10})
	id := runWorker(t, b.URL())
	nc := natstest.Connect(t, b.URL())
	codec, _ := proto.NewCodec(proto.CodecPacked, proto.Limits{})
	docs := make([]string, 60) // 60 x 384 float32 = 92 KB of result from 1 KB of input
	for i := range docs {
		docs[i] = "word"
	}
	data, _ := codec.AppendBatch(nil, &proto.Batch{ID: 1, Workload: "embed", Docs: docs})
	reply := request(t, nc, id, data, "")
	if got, want := reply.Header.Get(micro.ErrorCodeHeader), "413"; got != want {
		t.Fatalf("error code = %q, want %q", got, want)
	}
	if msg := reply.Header.Get(micro.ErrorHeader); !strings.Contains(msg, "max_payload") {
		t.Errorf("error %q does not name max_payload", msg)
	}
}

// TestWorkerRefusesResultsJustOverMaxPayload: max_payload counts a reply's
// headers too. A result whose body fits but whose body and headers do not
// must come back as a 413 (the coordinator splits the batch), not vanish
// in a failed publish (the coordinator would wait out its deadline).
func TestWorkerRefusesResultsJustOverMaxPayload(t *testing.T) {
	const maxPayload = 64 << 10
	b := natstest.NewBroker(t, broker.Options{MaxPayload: maxPayload})
	id := runWorker(t, b.URL())
	nc := natstest.Connect(t, b.URL())
	codec, _ := proto.NewCodec(proto.CodecPacked, proto.Limits{})
	// The body of a one-document noop result of n bytes, as the worker encodes it.
	body := func(n int) int {
		enc, err := codec.AppendResult(nil, &proto.Result{BatchID: 1, Attempt: 1, Out: workload.Output{Stride: n, Data: make([]byte, n)}})
		if err != nil {
			t.Fatal(err)
		}
		return len(enc)
	}
	out := maxPayload - 20 - (body(maxPayload-20) - (maxPayload - 20)) // the body is 20 bytes under the limit
	if got := body(out); got > maxPayload || got+40 < maxPayload {
		t.Fatalf("body of %d bytes: want it just under %d", got, maxPayload)
	}
	data, _ := codec.AppendBatch(nil, &proto.Batch{ID: 1, Attempt: 1, Workload: "noop", Params: workload.Params{OutBytes: out}, Docs: []string{"x"}})
	reply := request(t, nc, id, data, "")
	if got, want := reply.Header.Get(micro.ErrorCodeHeader), "413"; got != want {
		t.Fatalf("error code = %q, want %q (%d bytes of body)", got, want, len(reply.Data))
	}
	if msg := reply.Header.Get(micro.ErrorHeader); !strings.Contains(msg, "max_payload") {
		t.Errorf("error %q does not name max_payload", msg)
	}
}

// A worker echoes its batch's token: in the result, and in the header of an
// error reply, so the coordinator can tell either from a forgery.
func TestWorkerEchoesToken(t *testing.T) {
	_, url := natstest.NewServer(t)
	addr := runWorker(t, url)
	nc := natstest.Connect(t, url)
	codec, _ := proto.NewCodec(proto.CodecPacked, proto.Limits{})
	tok := proto.Token{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	good, _ := codec.AppendBatch(nil, &proto.Batch{ID: 1, Attempt: 1, Token: tok, Workload: "noop", Docs: []string{"x"}})
	reply := request(t, nc, addr, good, "")
	var r proto.Result
	if err := codec.DecodeResult(reply.Data, &r); err != nil {
		t.Fatal(err)
	}
	if r.Token != tok {
		t.Errorf("result token = %v, want %v", r.Token, tok)
	}
	bad, _ := codec.AppendBatch(nil, &proto.Batch{ID: 2, Attempt: 1, Token: tok, Workload: "nope", Docs: []string{"x"}})
	reply = request(t, nc, addr, bad, "")
	if got := reply.Header.Get(micro.ErrorCodeHeader); got != "400" {
		t.Fatalf("error code = %q, want 400", got)
	}
	if got, want := reply.Header.Get(proto.HeaderToken), tok.String(); got != want {
		t.Errorf("error reply %s = %q, want %q", proto.HeaderToken, got, want)
	}
	// A message that never got as far as its token answers with none.
	reply = request(t, nc, addr, []byte{0x97, 0x01}, "")
	if got, want := reply.Header.Get(proto.HeaderToken), (proto.Token{}).String(); got != want {
		t.Errorf("error reply to a truncated batch: %s = %q, want %q (the last batch's must not leak)", proto.HeaderToken, got, want)
	}
}
