package coordinator

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/worker"
	"github.com/ferrylab/ferry/workload"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

func packedCodec(tb testing.TB) proto.Codec {
	tb.Helper()
	c, err := proto.NewCodec(proto.CodecPacked, proto.Limits{})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// startWorker runs a real worker in this process and returns its ID.
func startWorker(t *testing.T, url string) string {
	t.Helper()
	w, err := worker.New(worker.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	nc := natstest.Connect(t, url)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if ids, _ := Discover(ctx, nc, 100*time.Millisecond, 1); len(ids) > 0 {
			return ids[0]
		}
		if time.Now().After(deadline) {
			t.Fatal("worker did not answer discovery")
		}
	}
}

func link(t *testing.T, nc *nats.Conn, c proto.Codec, id string) *Link {
	t.Helper()
	l, err := NewLink(nc, c, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestLinkRoundTrip(t *testing.T) {
	_, url := natstest.NewServer(t)
	id := startWorker(t, url)
	nc := natstest.Connect(t, url)
	plain := packedCodec(t)
	zipped, err := proto.NewCompressed(plain, proto.CompressS2, int(nc.MaxPayload()))
	if err != nil {
		t.Fatal(err)
	}
	docs := []string{strings.Repeat("the same words again and again ", 40), "short one", ""}
	var bytesOut [2]int
	for i, c := range []proto.Codec{plain, zipped} {
		l := link(t, nc, c, id)
		b := &proto.Batch{ID: 7, Attempt: 1, Workload: "embed", Params: workload.Params{Dim: 16}, Docs: docs}
		r, err := l.RoundTrip(context.Background(), b, nil, 10*time.Second)
		if err != nil {
			t.Fatalf("round trip %d: %v", i, err)
		}
		if got, want := len(r.Res.Out.Vecs), 16*len(docs); got != want || r.Res.BatchID != 7 {
			t.Fatalf("result: %d floats for batch %d, want %d for batch 7", got, r.Res.BatchID, want)
		}
		if r.Worker != id || r.Timing[StageCompute] <= 0 || r.Timing[StageTransport] <= 0 {
			t.Errorf("worker %q, timing %v: want the worker's ID and measured stages", r.Worker, r.Timing)
		}
		bytesOut[i] = r.BytesOut
	}
	if bytesOut[1] >= bytesOut[0] {
		t.Errorf("compressed batch is %d bytes, plain %d", bytesOut[1], bytesOut[0])
	}
}

// A reply that comes after its request timed out must not be taken for the
// next request's reply.
func TestLinkDropsLateReply(t *testing.T) {
	_, url := natstest.NewServer(t)
	nc := natstest.Connect(t, url)
	codec := packedCodec(t)
	// A fake worker that sits on the first batch until the second arrives,
	// then answers both, the first one late.
	fake := natstest.Connect(t, url)
	var mu sync.Mutex
	var held *nats.Msg
	_, err := fake.Subscribe(proto.WorkSubject("slow"), func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if held == nil {
			held = m
			return
		}
		for _, req := range []*nats.Msg{held, m} {
			var b proto.Batch
			if err := codec.DecodeBatch(req.Data, &b); err != nil {
				t.Error(err)
				return
			}
			res := proto.Result{BatchID: b.ID, Attempt: b.Attempt, Token: b.Token}
			data, _ := codec.AppendResult(nil, &res)
			_ = req.Respond(data)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	fake.Flush()
	l := link(t, nc, codec, "slow")
	_, err = l.RoundTrip(context.Background(), &proto.Batch{ID: 1, Attempt: 1, Workload: "noop"}, nil, 50*time.Millisecond)
	if !errors.Is(err, errDeadline) {
		t.Fatalf("first round trip: err = %v, want a timeout", err)
	}
	r, err := l.RoundTrip(context.Background(), &proto.Batch{ID: 2, Attempt: 1, Workload: "noop"}, nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Res.BatchID, uint64(2); got != want {
		t.Fatalf("second round trip got the result of batch %d, want %d", got, want)
	}
}

func TestLinkErrors(t *testing.T) {
	_, url := natstest.NewServer(t)
	id := startWorker(t, url)
	nc := natstest.Connect(t, url)
	codec := packedCodec(t)
	ctx := context.Background()

	t.Run("no worker is gone", func(t *testing.T) {
		_, err := link(t, nc, codec, "nobody").RoundTrip(ctx, &proto.Batch{ID: 1, Workload: "noop"}, nil, 5*time.Second)
		if !errors.Is(err, errGone) {
			t.Fatalf("err = %v, want errGone", err)
		}
	})
	t.Run("worker error reply", func(t *testing.T) {
		_, err := link(t, nc, codec, id).RoundTrip(ctx, &proto.Batch{ID: 1, Workload: "no-such-workload"}, nil, 5*time.Second)
		if err == nil || !strings.Contains(err.Error(), "worker error 400") {
			t.Fatalf("err = %v, want the worker's 400", err)
		}
	})
	t.Run("result over the limit", func(t *testing.T) {
		// A small batch whose noop result is 8 x 1 MiB: over the 8 MiB payload.
		docs := make([]string, 9)
		b := &proto.Batch{ID: 1, Workload: "noop", Params: workload.Params{OutBytes: 1 << 20}, Docs: docs}
		_, err := link(t, nc, codec, id).RoundTrip(ctx, b, nil, 10*time.Second)
		if !errors.Is(err, errTooLarge) {
			t.Fatalf("err = %v, want errTooLarge", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := link(t, nc, codec, "nobody-either").RoundTrip(cctx, &proto.Batch{ID: 1, Workload: "noop"}, nil, 5*time.Second)
		if !errors.Is(err, context.Canceled) && !errors.Is(err, errGone) {
			t.Fatalf("err = %v, want context.Canceled (or gone, if the status won the race)", err)
		}
	})
}

// A result must carry its batch's token back. Messages on the reply
// subject from anyone who did not see the batch (a header-only error, a
// result of the right shape and ID) are dropped and counted, and the Link
// waits on for the worker's own reply.
func TestLinkDropsForgedReplies(t *testing.T) {
	_, url := natstest.NewServer(t)
	nc := natstest.Connect(t, url)
	codec := packedCodec(t)
	// The fake worker stands in for a forger who knows the reply subject
	// but not the batch: it sends two forgeries before its real answer.
	fake := natstest.Connect(t, url)
	_, err := fake.Subscribe(proto.WorkSubject("_.forged"), func(m *nats.Msg) {
		var b proto.Batch
		if err := codec.DecodeBatch(m.Data, &b); err != nil {
			t.Error(err)
			return
		}
		forged := &nats.Msg{Subject: m.Reply, Header: nats.Header{}}
		forged.Header.Set(micro.ErrorCodeHeader, "400")
		forged.Header.Set(micro.ErrorHeader, "forged failure")
		_ = fake.PublishMsg(forged)
		wrong, _ := codec.AppendResult(nil, &proto.Result{BatchID: b.ID, Attempt: b.Attempt, Out: workload.Output{Stride: 1, Data: []byte("F")}})
		_ = fake.Publish(m.Reply, wrong)
		right, _ := codec.AppendResult(nil, &proto.Result{BatchID: b.ID, Attempt: b.Attempt, Token: b.Token, Out: workload.Output{Stride: 1, Data: []byte("R")}})
		_ = m.Respond(right)
	})
	if err != nil {
		t.Fatal(err)
	}
	fake.Flush()
	l := link(t, nc, codec, "_.forged")
	for id := range uint64(3) {
		r, err := l.RoundTrip(context.Background(), &proto.Batch{ID: id + 1, Attempt: 1, Workload: "noop", Docs: []string{"d"}}, nil, 10*time.Second)
		if err != nil {
			t.Fatalf("round trip %d: %v", id+1, err)
		}
		if got := string(r.Res.Out.Data); got != "R" {
			t.Fatalf("round trip %d took result %q, want the worker's own %q", id+1, got, "R")
		}
		if got, want := r.Forged, 2; got != want {
			t.Errorf("round trip %d: forged = %d, want %d", id+1, got, want)
		}
	}
}

// A worker's stage header is untrusted: a queue stage longer than the
// round trip it is part of is cut to the round trip, and transport stays
// positive.
func TestLinkBoundsAHostileQueueStage(t *testing.T) {
	_, url := natstest.NewServer(t)
	nc := natstest.Connect(t, url)
	codec := packedCodec(t)
	fake := natstest.Connect(t, url)
	_, err := fake.Subscribe(proto.WorkSubject("_.liar"), func(m *nats.Msg) {
		var b proto.Batch
		if err := codec.DecodeBatch(m.Data, &b); err != nil {
			t.Error(err)
			return
		}
		data, _ := codec.AppendResult(nil, &proto.Result{BatchID: b.ID, Attempt: b.Attempt, Token: b.Token, Out: workload.Output{Stride: 1, Data: []byte("R")}})
		reply := &nats.Msg{Subject: m.Reply, Data: data, Header: nats.Header{}}
		reply.Header.Set(proto.HeaderStagesNs, "1 2 3 0 9000000000000000000") // a queue of 285 years
		_ = fake.PublishMsg(reply)
	})
	if err != nil {
		t.Fatal(err)
	}
	fake.Flush()
	l := link(t, nc, codec, "_.liar")
	start := time.Now()
	r, err := l.RoundTrip(context.Background(), &proto.Batch{ID: 1, Attempt: 1, Workload: "noop", Docs: []string{"d"}}, nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if q, rt := r.Timing[StageQueue], time.Since(start); q <= 0 || q > rt {
		t.Errorf("queue stage %v, want it cut to the round trip (at most %v)", q, rt)
	}
	if r.Timing[StageTransport] <= 0 {
		t.Errorf("transport %v, want positive", r.Timing[StageTransport])
	}
}
