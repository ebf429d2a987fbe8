package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/worker"
	"github.com/ferrylab/ferry/workload"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// startWorker runs an in-process worker on a fresh broker and returns a
// client connection and the worker's own batch subject.
func startWorker(t *testing.T, lim proto.Limits) (*nats.Conn, string, <-chan error) {
	t.Helper()
	_, url := natstest.NewServer(t)
	w, err := worker.New(worker.Config{URL: url, Limits: lim, Name: "hostile-target"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("worker run: %v", err)
		}
	})
	nc := natstest.Connect(t, url)
	var id string
	deadline := time.Now().Add(20 * time.Second)
	for id == "" {
		if time.Now().After(deadline) {
			t.Fatal("worker did not list its batch endpoint in $SRV.INFO")
		}
		// INFO, not PING: a worker answers pings a moment before its batch
		// endpoint subscribes; INFO lists the endpoint once it has.
		m, err := nc.Request("$SRV.INFO."+proto.ServiceName, nil, 200*time.Millisecond)
		if err != nil {
			continue
		}
		var info micro.Info
		if err := json.Unmarshal(m.Data, &info); err != nil {
			t.Fatal(err)
		}
		for _, e := range info.Endpoints {
			if addr, ok := proto.ParseWorkSubject(e.Subject, info.ID); ok {
				id = addr
			}
		}
	}
	return nc, proto.WorkSubject(id), done
}

func encode(t *testing.T, codec string, b *proto.Batch) []byte {
	t.Helper()
	c, err := proto.NewCodec(codec, proto.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.AppendBatch(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// withDocsHeader encodes a batch with an empty docs array and replaces
// that array's header (the last byte, 0x90) by hdr.
func withDocsHeader(t *testing.T, codec string, hdr ...byte) []byte {
	t.Helper()
	p := encode(t, codec, &proto.Batch{ID: 1, Attempt: 1, Workload: "embed", Docs: []string{}})
	if p[len(p)-1] != 0x90 {
		t.Fatalf("%s: empty docs encode as %#x, not at the end", codec, p[len(p)-1])
	}
	return append(p[:len(p)-1:len(p)-1], hdr...)
}

type hostile struct {
	name  string
	codec string // header value; "" = none (packed)
	data  []byte
	want  string // substring of the error message; "" = any
}

func hostileMessages(t *testing.T, lim proto.Limits) []hostile {
	valid := func(codec string) *proto.Batch {
		return &proto.Batch{ID: 9, Attempt: 1, Workload: "embed", Params: workload.Params{Dim: 8}, Docs: []string{"a b c", "d e f"}}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(rng.Uint32())
	}
	var out []hostile
	for _, codec := range proto.CodecNames() {
		good := encode(t, codec, valid(codec))
		tooMany := valid(codec)
		tooMany.Docs = make([]string, lim.MaxDocs+1)
		bigDoc := valid(codec)
		bigDoc.Docs = []string{strings.Repeat("x", lim.MaxDocBytes+1)}
		badParams := valid(codec)
		badParams.Params.Dim = 1 << 30
		unknownWL := valid(codec)
		unknownWL.Workload = "../../bin/sh"
		out = append(out,
			hostile{"empty", codec, nil, ""},
			hostile{"nil", codec, []byte{0xc0}, ""},
			hostile{"array32 header", codec, []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, ""},
			hostile{"map32 header", codec, []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, ""},
			hostile{"bin32 header", codec, []byte{0xc6, 0xff, 0xff, 0xff, 0xff}, ""},
			hostile{"str32 header", codec, []byte{0xdb, 0xff, 0xff, 0xff, 0xff}, ""},
			hostile{"ext32 header", codec, []byte{0xc9, 0xff, 0xff, 0xff, 0xff, 0x01}, ""},
			hostile{"docs array32 of 2^31", codec, withDocsHeader(t, codec, 0xdd, 0x7f, 0xff, 0xff, 0xff), ""},
			hostile{"doc str32 of 2^31", codec, withDocsHeader(t, codec, 0x91, 0xdb, 0x7f, 0xff, 0xff, 0xff, 'a', 'b'), ""},
			hostile{"doc bin32 of 2^31", codec, withDocsHeader(t, codec, 0x91, 0xc6, 0x7f, 0xff, 0xff, 0xff, 'a', 'b'), ""},
			hostile{"deep arrays", codec, append(bytes.Repeat([]byte{0x91}, 100_000), 0xc0), ""},
			hostile{"deep maps", codec, append(bytes.Repeat([]byte{0x81, 0xa1, 'k'}, 30_000), 0xc0), ""},
			hostile{"truncated", codec, good[:len(good)/2], ""},
			hostile{"trailing bytes", codec, append(append([]byte{}, good...), 0xc0), ""},
			hostile{"wrong types", codec, []byte{0x96, 0xa1, 'x', 0xa1, 'x', 0xa1, 'x', 0xa1, 'x', 0xa1, 'x', 0xa1, 'x'}, ""},
			hostile{"random bytes", codec, junk, ""},
			hostile{"too many docs", codec, encode(t, codec, tooMany), "limit"},
			hostile{"doc over max_doc_bytes", codec, encode(t, codec, bigDoc), "limit"},
			hostile{"oversized params", codec, encode(t, codec, badParams), "dim"},
			hostile{"unknown workload", codec, encode(t, codec, unknownWL), "workload"},
		)
	}
	return append(out, hostile{"unknown codec", "gob", encode(t, proto.CodecPacked, valid("")), "codec"})
}

// TestHostileBatches sends malformed and hostile messages straight to a
// running worker's subject. Each must get a micro error reply, allocate at
// most 8x its size + 1 MiB in this process (worker, broker and client
// together), and leave the worker serving valid batches.
func TestHostileBatches(t *testing.T) {
	lim := proto.Limits{MaxDocs: 1000, MaxDocBytes: 4096}
	nc, subject, done := startWorker(t, lim)
	var ms runtime.MemStats
	for _, h := range hostileMessages(t, lim) {
		t.Run(h.codec+"/"+h.name, func(t *testing.T) {
			msg := &nats.Msg{Subject: subject, Data: h.data, Header: nats.Header{}}
			if h.codec != "" {
				msg.Header.Set(proto.HeaderCodec, h.codec)
			}
			runtime.GC()
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			reply, err := nc.RequestMsg(msg, 10*time.Second)
			runtime.ReadMemStats(&ms)
			if err != nil {
				t.Fatalf("no reply: %v", err)
			}
			if got, want := reply.Header.Get(micro.ErrorCodeHeader), "400"; got != want {
				t.Fatalf("error code = %q, want %q (reply %d bytes)", got, want, len(reply.Data))
			}
			desc := reply.Header.Get(micro.ErrorHeader)
			if !strings.Contains(desc, h.want) {
				t.Errorf("error %q does not mention %q", desc, h.want)
			}
			t.Logf("400 %s", desc)
			if alloc, budget := ms.TotalAlloc-before, uint64(8*len(h.data)+1<<20); alloc > budget {
				t.Errorf("allocated %d bytes for a %d-byte message, over %d", alloc, len(h.data), budget)
			}
		})
	}
	select {
	case err := <-done:
		t.Fatalf("worker stopped: %v", err)
	default:
	}
	for _, codec := range proto.CodecNames() {
		b := &proto.Batch{ID: 77, Attempt: 1, Workload: "embed", Params: workload.Params{Dim: 16}, Docs: []string{"still", "serving"}}
		msg := &nats.Msg{Subject: subject, Data: encode(t, codec, b), Header: nats.Header{proto.HeaderCodec: {codec}}}
		reply, err := nc.RequestMsg(msg, 10*time.Second)
		if err != nil {
			t.Fatalf("%s: valid batch after the hostile ones: %v", codec, err)
		}
		if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
			t.Fatalf("%s: valid batch: error %s %s", codec, code, reply.Header.Get(micro.ErrorHeader))
		}
		c, _ := proto.NewCodec(codec, proto.Limits{})
		var r proto.Result
		if err := c.DecodeResult(reply.Data, &r); err != nil {
			t.Fatal(err)
		}
		if r.BatchID != 77 || r.Out.Dim != 16 || len(r.Out.Vecs) != 2*16 {
			t.Errorf("%s: result batch %d dim %d with %d floats, want batch 77, 2 rows of 16", codec, r.BatchID, r.Out.Dim, len(r.Out.Vecs))
		}
	}
}
