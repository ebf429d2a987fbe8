package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/internal/poison"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/workload"
	"github.com/nats-io/nats.go"
)

func texts(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("document %d talks about ferries and boats number %d", i, i*7)
	}
	return out
}

// orderSink checks every document arrives exactly once, in order.
type orderSink struct {
	mu      sync.Mutex
	next    int64
	written int64
	failed  []int64
	t       testing.TB
}

func (s *orderSink) Write(first int64, out *workload.Output, failed []bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if first != s.next {
		s.t.Errorf("write at %d, want %d", first, s.next)
	}
	if out.Dim > 0 && len(out.Vecs) != len(failed)*out.Dim {
		s.t.Errorf("write at %d: %d floats for %d docs", first, len(out.Vecs), len(failed))
	}
	for i, f := range failed {
		if f {
			s.failed = append(s.failed, first+int64(i))
		} else {
			s.written++
		}
	}
	s.next = first + int64(len(failed))
	return nil
}

func (s *orderSink) Close() error { return nil }

// backend builds mode's backend with two lanes or two expected workers.
func backend(t *testing.T, mode string, nc *nats.Conn, cfg coordinator.Config) coordinator.Backend {
	t.Helper()
	var b coordinator.Backend
	var err error
	if mode == coordinator.ModeProcesses {
		b, err = coordinator.NewProcesses(nc, cfg, 2, nil)
	} else {
		b, err = coordinator.NewLocal(mode, 2, "")
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func run(t *testing.T, cfg coordinator.Config, b coordinator.Backend, list []string) (*coordinator.Stats, *orderSink, error) {
	t.Helper()
	sink := &orderSink{t: t}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := coordinator.Run(ctx, cfg, corpus.Slice(list), b, sink)
	return st, sink, err
}

func TestModesGiveIdenticalResults(t *testing.T) {
	_, url := natstest.NewServer(t)
	natstest.StartWorkers(t, url, 2)
	nc := natstest.Connect(t, url)
	list := texts(600)
	for _, wl := range []string{"embed", "chunk", "infer", "spin"} {
		t.Run(wl, func(t *testing.T) {
			p := workload.Params{SpinCostNs: 1000, ChunkTokens: 8}
			if wl == "infer" {
				p.Dim = 32 // the race detector makes the full model slow
			}
			cfg := coordinator.Config{Workload: wl, BatchSize: 37, Workers: 2, Params: p}
			var digest string
			for _, mode := range coordinator.Modes() {
				b := backend(t, mode, nc, cfg)
				st, sink, err := run(t, cfg, b, list)
				if err != nil {
					t.Fatalf("%s: %v", mode, err)
				}
				if got, want := sink.written, int64(len(list)); got != want {
					t.Errorf("%s: written %d, want %d", mode, got, want)
				}
				if digest == "" {
					digest = st.Digest
				} else if st.Digest != digest {
					t.Errorf("%s: digest %s differs from serial's %s", mode, st.Digest, digest)
				}
			}
		})
	}
}

func TestMsgpackCodecMatchesPacked(t *testing.T) {
	_, url := natstest.NewServer(t)
	natstest.StartWorkers(t, url, 1)
	nc := natstest.Connect(t, url)
	list := texts(300)
	var digests []string
	for _, codec := range proto.CodecNames() {
		cfg := coordinator.Config{BatchSize: 50, Workers: 1, Codec: codec}
		b, err := coordinator.NewProcesses(nc, cfg, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		st, _, err := run(t, cfg, b, list)
		if err != nil {
			t.Fatalf("%s: %v", codec, err)
		}
		digests = append(digests, st.Digest)
	}
	if digests[0] != digests[1] {
		t.Errorf("packed digest %s != msgpack digest %s", digests[0], digests[1])
	}
}

func TestPoisonDocumentIsIsolated(t *testing.T) {
	_, url := natstest.NewServer(t)
	natstest.StartWorkers(t, url, 2)
	nc := natstest.Connect(t, url)
	list := texts(1000)
	const bad = 617
	cfg := coordinator.Config{Workload: poison.Name, BatchSize: 100, Workers: 2, Params: workload.Params{Args: poison.Args(list[bad], "embed")}}
	for _, mode := range []string{coordinator.ModeGoroutines, coordinator.ModeProcesses} {
		t.Run(mode, func(t *testing.T) {
			b := backend(t, mode, nc, cfg)
			st, sink, err := run(t, cfg, b, list)
			if !errors.Is(err, coordinator.ErrDocsFailed) {
				t.Fatalf("err = %v, want ErrDocsFailed", err)
			}
			if got, want := sink.written, int64(len(list)-1); got != want {
				t.Errorf("written %d, want %d", got, want)
			}
			if len(st.Failed) != 1 || st.Failed[0].Index != bad {
				t.Errorf("failed = %+v, want only document %d", st.Failed, bad)
			}
			if len(sink.failed) != 1 || sink.failed[0] != bad {
				t.Errorf("sink failed = %v", sink.failed)
			}
		})
	}
}

func TestEmptyInput(t *testing.T) {
	b, _ := coordinator.NewLocal(coordinator.ModeSerial, 1, "")
	_, _, err := run(t, coordinator.Config{}, b, nil)
	if !errors.Is(err, coordinator.ErrNoDocuments) {
		t.Errorf("err = %v, want ErrNoDocuments", err)
	}
}

func TestInvalidConfigNamesKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  coordinator.Config
		key  string
	}{
		{"negative batch", coordinator.Config{BatchSize: -1}, "batch_size=-1"},
		{"negative workers", coordinator.Config{Workers: -2}, "workers=-2"},
		{"unknown codec", coordinator.Config{Codec: "gob"}, "codec=gob"},
		{"unknown workload", coordinator.Config{Workload: "nope"}, "workload=nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.WithDefaults().Validate()
			if !errors.Is(err, coordinator.ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
			if got := err.Error(); !contains(got, tc.key) {
				t.Errorf("error %q does not name %q", got, tc.key)
			}
		})
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// A responder that answers with a result of the wrong shape must not
// corrupt the output: the batch fails its attempts and its documents are
// reported, never written.
func TestMalformedResultIsRejected(t *testing.T) {
	_, url := natstest.NewServer(t)
	nc := natstest.Connect(t, url)
	// Pose as a worker: answer discovery, then reply to batches with too few rows.
	poseAsWorker(t, natstest.Connect(t, url), "LIAR", func(b *proto.Batch) *proto.Result {
		return &proto.Result{BatchID: b.ID, Attempt: b.Attempt, Token: b.Token, Out: workload.Output{Dim: 4, Vecs: make([]float32, 4*(len(b.Docs)+1))}}
	})
	cfg := coordinator.Config{BatchSize: 2, Workers: 1, MaxAttempts: 1}
	b, err := coordinator.NewProcesses(nc, cfg, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, sink, err := run(t, cfg, b, texts(4))
	if !errors.Is(err, coordinator.ErrDocsFailed) {
		t.Fatalf("err = %v, want ErrDocsFailed", err)
	}
	if sink.written != 0 || len(st.Failed) != 4 {
		t.Errorf("written %d, failed %d; want 0 and 4", sink.written, len(st.Failed))
	}
}

// widthSink records the row widths written.
type widthSink struct {
	orderSink
	widths map[int]int // dim -> writes
}

func (s *widthSink) Write(first int64, out *workload.Output, failed []bool) error {
	s.mu.Lock()
	if out.Dim > 0 {
		s.widths[out.Dim]++
	}
	s.mu.Unlock()
	return s.orderSink.Write(first, out, failed)
}

// A result's row width is the job's: once a result has set it, one of
// another width is rejected (its documents are retried, then reported),
// never written beside the others.
func TestResultOfAnotherWidthIsRejected(t *testing.T) {
	_, url := natstest.NewServer(t)
	nc := natstest.Connect(t, url)
	// Documents 0-1 come back 4 wide; every later batch 2 wide.
	poseAsWorker(t, natstest.Connect(t, url), "WIDE", func(b *proto.Batch) *proto.Result {
		dim := 2
		if b.First == 0 {
			dim = 4
		}
		return &proto.Result{BatchID: b.ID, Attempt: b.Attempt, Token: b.Token, Out: workload.Output{Dim: dim, Vecs: make([]float32, dim*len(b.Docs))}}
	})
	cfg := coordinator.Config{BatchSize: 2, Workers: 1, MaxAttempts: 1, InFlight: 1}
	b, err := coordinator.NewProcesses(nc, cfg, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	sink := &widthSink{orderSink: orderSink{t: t}, widths: map[int]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := coordinator.Run(ctx, cfg, corpus.Slice(texts(6)), b, sink)
	if !errors.Is(err, coordinator.ErrDocsFailed) {
		t.Fatalf("err = %v, want ErrDocsFailed", err)
	}
	if len(sink.widths) != 1 || sink.widths[4] != 1 {
		t.Errorf("rows written %v times by width, want only the first batch's width 4", sink.widths)
	}
	if sink.written != 2 || len(st.Failed) != 4 {
		t.Errorf("written %d, failed %d; want 2 and 4", sink.written, len(st.Failed))
	}
}

// A client that answers discovery for a worker that does not exist slows a
// job (batches sent there come back as "no responders" and are requeued)
// but does not change its output.
func TestDiscoveryOfAWorkerThatDoesNotExist(t *testing.T) {
	_, url := natstest.NewServer(t)
	natstest.StartWorkers(t, url, 1)
	nc := natstest.Connect(t, url)
	poseAsWorker(t, natstest.Connect(t, url), "GHOST", nil) // nobody serves its batch subject
	cfg := coordinator.Config{Workload: "embed", BatchSize: 10, Workers: 2}
	serial, _, err := run(t, cfg, backend(t, coordinator.ModeSerial, nil, cfg), texts(500))
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := run(t, cfg, backend(t, coordinator.ModeProcesses, nc, cfg), texts(500))
	if err != nil {
		t.Fatal(err)
	}
	if st.Digest != serial.Digest || st.Requeues == 0 {
		t.Errorf("digest %s (serial %s), requeues %d: want the same output and requeued batches", st.Digest, serial.Digest, st.Requeues)
	}
}

// poseAsWorker answers discovery as a worker with instance ID id on nc and,
// unless serve is nil, answers each batch sent to it with serve's result.
func poseAsWorker(t *testing.T, nc *nats.Conn, id string, serve func(*proto.Batch) *proto.Result) {
	t.Helper()
	codec, _ := proto.NewCodec(proto.CodecPacked, proto.Limits{})
	subject := proto.WorkSubject(proto.WorkAddr(proto.AnonymousLogin, id))
	if _, err := nc.Subscribe("$SRV.INFO.ferry-worker", func(m *nats.Msg) {
		m.Respond([]byte(`{"name":"ferry-worker","id":"` + id + `","version":"0.1.0","type":"io.nats.micro.v1.info_response",` +
			`"endpoints":[{"name":"batch","subject":"` + subject + `"}]}`))
	}); err != nil {
		t.Fatal(err)
	}
	if serve == nil {
		return
	}
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
		var b proto.Batch
		if err := codec.DecodeBatch(m.Data, &b); err != nil {
			return
		}
		out, _ := codec.AppendResult(nil, serve(&b))
		m.Respond(out)
	}); err != nil {
		t.Fatal(err)
	}
}
