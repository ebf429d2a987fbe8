// Package conformance drives docs/protocol.md with bytes built by hand:
// the worked examples decode to what the page says and ferry writes them
// byte for byte; a real worker answers a hand-built batch with the
// hand-built result; a worker written against the page alone (raw NATS
// subscriptions, a generic msgpack decoder, replies assembled byte by
// byte) joins a real coordinator's job, anonymous and logged in under
// ferry's broker roles; an exec program written the same way computes for
// the exec bridge.
package conformance

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrylab/ferry/bridge"
	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/sink"
	"github.com/ferrylab/ferry/workload"
	"github.com/nats-io/nats.go"
	"github.com/vmihailenco/msgpack/v5"
)

// The worked examples of docs/protocol.md, as the page writes them.
const (
	tokenBin   = "c4 10 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f" // every example's
	tokenHex   = "000102030405060708090a0b0c0d0e0f"                      // as a header carries it
	noopBatch  = "97 01 01 " + tokenBin + " a4 6e 6f 6f 70 97 00 00 00 00 04 00 80 00 92 a5 66 65 72 72 79 a2 67 6f"
	noopResult = "99 01 01 " + tokenBin + " 00 c4 00 c4 00 04 c4 08 66 65 72 72 67 6f 67 6f 90"
	argsBatch  = "97 02 01 c4 10 000102030405060708090a0b0c0d0e0f a7 6d696e68617368 97 00 00 00 00 00 00 82 a6 686173686573 40 a5 6c6f776572 c3 64 91 a5 6665727279"
	dimResult  = "99 07 01 c4 10 000102030405060708090a0b0c0d0e0f 02 c4 10 0000803f 000000bf 00000000 00000000 c4 00 00 c4 00 91 92 01 a3 626164"
	endsResult = "9a 03 01 c4 10 000102030405060708090a0b0c0d0e0f 00 c4 00 c4 00 00 c4 07 4645525259474f 90 c4 08 05000000 07000000"
	endsReply  = "00 00 00 33 92 cd 05 dc" // then endsResult
	noopFrame  = "00 00 00 2d"             // then noopBatch
)

// The page's sizes of its examples.
const (
	noopBatchLen  = 45
	noopResultLen = 38
	endsResultLen = 47
)

// exampleToken is the token of every worked example: 00 01 ... 0f.
var exampleToken = func() (t proto.Token) {
	for i := range t {
		t[i] = byte(i)
	}
	return t
}()

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// envProgram makes the test binary the hand-written exec program.
const envProgram = "FERRY_CONFORMANCE_PROGRAM"

func TestMain(m *testing.M) {
	if os.Getenv(envProgram) != "" {
		if err := program(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "program:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestWorkedExamplesAreTheCodecsBytes(t *testing.T) {
	codec, err := proto.NewCodec(proto.CodecPacked, proto.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	args, err := workload.MakeArgs(map[string]any{"hashes": 64, "lower": true})
	if err != nil {
		t.Fatal(err)
	}
	if got := exampleToken.String(); got != tokenHex {
		t.Errorf("the examples' token is %s in a header, the page says %s", got, tokenHex)
	}
	tok := exampleToken
	batches := []struct {
		hex  string
		want proto.Batch
	}{
		{noopBatch, proto.Batch{ID: 1, Attempt: 1, Token: tok, Workload: "noop", Params: workload.Params{OutBytes: 4}, Docs: []string{"ferry", "go"}}},
		{argsBatch, proto.Batch{ID: 2, Attempt: 1, Token: tok, Workload: "minhash", Params: workload.Params{Args: args}, First: 100, Docs: []string{"ferry"}}},
	}
	for _, tc := range batches {
		var got proto.Batch
		if err := codec.DecodeBatch(unhex(t, tc.hex), &got); err != nil {
			t.Fatalf("decode %s: %v", tc.hex, err)
		}
		if got.ID != tc.want.ID || got.Attempt != tc.want.Attempt || got.Token != tc.want.Token || got.Workload != tc.want.Workload ||
			got.Params != tc.want.Params || got.First != tc.want.First || !slices.Equal(got.Docs, tc.want.Docs) {
			t.Errorf("%s decodes to %+v, want %+v", tc.hex, got, tc.want)
		}
		if enc, _ := codec.AppendBatch(nil, &tc.want); !bytes.Equal(enc, unhex(t, tc.hex)) {
			t.Errorf("ferry writes %x, the page says %s", enc, tc.hex)
		}
	}
	results := []struct {
		hex  string
		want proto.Result
	}{
		{noopResult, proto.Result{BatchID: 1, Attempt: 1, Token: tok, Out: workload.Output{Stride: 4, Data: []byte("ferrgogo")}}},
		{dimResult, proto.Result{BatchID: 7, Attempt: 1, Token: tok, Out: workload.Output{Dim: 2, Vecs: []float32{1, -0.5, 0, 0}},
			Errs: []proto.DocError{{Doc: 1, Msg: "bad"}}}},
		{endsResult, proto.Result{BatchID: 3, Attempt: 1, Token: tok, Out: workload.Output{Data: []byte("FERRYGO"), Ends: []uint32{5, 7}}}},
	}
	for _, tc := range results {
		var got proto.Result
		if err := codec.DecodeResult(unhex(t, tc.hex), &got); err != nil {
			t.Fatalf("decode %s: %v", tc.hex, err)
		}
		if got.BatchID != tc.want.BatchID || got.Attempt != tc.want.Attempt || got.Token != tc.want.Token || got.Out.Stride != tc.want.Out.Stride ||
			got.Out.Dim != tc.want.Out.Dim || !slices.Equal(got.Out.Vecs, tc.want.Out.Vecs) ||
			!bytes.Equal(got.Out.Data, tc.want.Out.Data) || !slices.Equal(got.Out.Ends, tc.want.Out.Ends) || !slices.Equal(got.Errs, tc.want.Errs) {
			t.Errorf("%s decodes to %+v, want %+v", tc.hex, got, tc.want)
		}
		if enc, _ := codec.AppendResult(nil, &tc.want); !bytes.Equal(enc, unhex(t, tc.hex)) {
			t.Errorf("ferry writes %x, the page says %s", enc, tc.hex)
		}
	}
	for _, c := range []struct {
		hex  string
		want int
	}{{noopBatch, noopBatchLen}, {noopResult, noopResultLen}, {endsResult, endsResultLen}} {
		if n := len(unhex(t, c.hex)); n != c.want {
			t.Errorf("%s is %d bytes, the page says %d", c.hex, n, c.want)
		}
	}
	req, _ := proto.AppendExecRequest(nil, &batches[0].want)
	if want := unhex(t, noopFrame+noopBatch); !bytes.Equal(req, want) {
		t.Errorf("request frame %x, the page says %x", req, want)
	}
	reply, _ := proto.AppendExecReply(nil, 1500, &results[2].want)
	if want := unhex(t, endsReply+endsResult); !bytes.Equal(reply, want) {
		t.Errorf("reply frame %x, the page says %x", reply, want)
	}
}

// discover asks $SRV.INFO.ferry-worker by hand and returns the first
// worker's batch subject, ferry.work.<login>.<id>, as the page's discovery
// section says; the worker must be connected as login.
func discover(t *testing.T, nc *nats.Conn, login string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		m, err := nc.Request("$SRV.INFO.ferry-worker", nil, time.Second)
		if err != nil {
			continue
		}
		var info struct {
			Type      string `json:"type"`
			Name      string `json:"name"`
			ID        string `json:"id"`
			Endpoints []struct {
				Subject string `json:"subject"`
			} `json:"endpoints"`
		}
		if err := json.Unmarshal(m.Data, &info); err != nil {
			t.Fatalf("INFO reply is not JSON: %v", err)
		}
		if info.Type != "io.nats.micro.v1.info_response" || info.Name != "ferry-worker" {
			t.Fatalf("INFO reply %s", m.Data)
		}
		for _, e := range info.Endpoints {
			if e.Subject == "ferry.work."+login+"."+info.ID {
				return e.Subject
			}
		}
	}
	t.Fatal("no worker answered $SRV.INFO.ferry-worker")
	return ""
}

func TestWorkerAnswersAHandBuiltBatch(t *testing.T) {
	_, url := natstest.NewServer(t)
	natstest.StartWorkers(t, url, 1)
	// Anonymous: login "_", so the worker serves ferry.work._.<id> and
	// this client's inbox prefix is _INBOX._.
	nc := natstest.Connect(t, url, nats.CustomInboxPrefix("_INBOX._"))
	subject := discover(t, nc, "_")

	m, err := nc.Request(subject, unhex(t, noopBatch), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Data, unhex(t, noopResult)) {
		t.Errorf("result %x, the page says %s", m.Data, noopResult)
	}
	// decode, compute, encode, pipe (0: not exec), queue
	stages := strings.Fields(m.Header.Get("Ferry-Stages-Ns"))
	if len(stages) != 5 || stages[3] != "0" {
		t.Errorf("Ferry-Stages-Ns = %q, want five fields, the fourth (pipe) 0", m.Header.Get("Ferry-Stages-Ns"))
	}
	for _, f := range stages {
		if n, err := strconv.ParseInt(f, 10, 64); err != nil || n < 0 {
			t.Errorf("stage %q is not a count of nanoseconds", f)
		}
	}
	if m.Header.Get("Ferry-Worker") == "" {
		t.Errorf("no Ferry-Worker header")
	}

	const noToken = "00000000000000000000000000000000"
	for _, tc := range []struct {
		name, batch, code, token string
	}{
		{"truncated", noopBatch[:len(noopBatch)-6], "400", tokenHex},
		{"params that do not fit", strings.Replace(noopBatch, "a4 6e 6f 6f 70 97 00 00 00 00 04 00 80", "a4 6e 6f 6f 70 97 00 00 00 00 04 00 81 a1 6b 01", 1), "400", tokenHex},
		{"unknown workload", strings.Replace(noopBatch, "a4 6e 6f 6f 70", "a4 6e 6f 6f 71", 1), "400", tokenHex},
		{"token of 15 bytes", strings.Replace(noopBatch, tokenBin, "c4 0f 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e", 1), "400", noToken},
		{"batch of 6 fields", strings.Replace(noopBatch, "97 01 01 "+tokenBin, "96 01 01", 1), "400", noToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := nc.Request(subject, unhex(t, tc.batch), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Header.Get("Nats-Service-Error-Code"); got != tc.code || len(m.Data) != 0 || m.Header.Get("Nats-Service-Error") == "" {
				t.Errorf("error code %q, payload %d bytes, message %q: want %s, empty, a message",
					got, len(m.Data), m.Header.Get("Nats-Service-Error"), tc.code)
			}
			if got := m.Header.Get("Ferry-Token"); got != tc.token {
				t.Errorf("Ferry-Token %q, want %q", got, tc.token)
			}
		})
	}
}

// nativeWorker is a worker written from the page alone: raw subscriptions
// for INFO and its batch subject (ferry.work.<login>.<id>), batches read
// with a generic msgpack decoder (as any language's library would),
// results written byte by byte with the batch's token. It computes noop,
// and checks that the coordinator connected as coord sends its batches
// with the page's reply subjects.
func nativeWorker(t *testing.T, nc *nats.Conn, login, id, coord string) {
	t.Helper()
	subject := "ferry.work." + login + "." + id
	replyPrefix := "_INBOX." + coord + ".to." + login + "."
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		// _INBOX.<C>.to.<login>.<n>.<gen>, gen a count from 0
		n, gen, ok := strings.Cut(strings.TrimPrefix(m.Reply, replyPrefix), ".")
		if _, err := strconv.ParseUint(gen, 10, 32); !strings.HasPrefix(m.Reply, replyPrefix) || !ok || n == "" || err != nil {
			t.Errorf("native worker: reply subject %q, the page says %s<n>.<gen>", m.Reply, replyPrefix)
		}
		dec := msgpack.NewDecoder(bytes.NewReader(m.Data))
		dec.UseLooseInterfaceDecoding(true)
		var batch []any
		if err := dec.Decode(&batch); err != nil || len(batch) != 7 {
			t.Errorf("native worker: batch %x: %v", m.Data, err)
			return
		}
		tok, ok := binOf(batch[2])
		if !ok || len(tok) != 16 {
			t.Errorf("native worker: token %#v, want 16 bytes", batch[2])
			return
		}
		params, docs := batch[4].([]any), batch[6].([]any)
		outBytes := int(uintOf(params[4]))
		var data []byte
		for _, d := range docs {
			s := d.(string)
			for range outBytes / max(len(s), 1) {
				data = append(data, s...)
			}
			data = append(data, s[:outBytes%max(len(s), 1)]...)
		}
		// [batch_id, attempt, token, dim 0, vecs c4 00, spans c4 00, stride, data, errs []]
		res := []byte{0x99, 0xcf}
		res = binary.BigEndian.AppendUint64(res, uintOf(batch[0]))
		res = append(res, 0xce)
		res = binary.BigEndian.AppendUint32(res, uint32(uintOf(batch[1])))
		res = append(append(res, 0xc4, 16), tok...)
		res = append(res, 0x00, 0xc4, 0x00, 0xc4, 0x00, 0xcd, byte(outBytes>>8), byte(outBytes), 0xc6)
		res = binary.BigEndian.AppendUint32(res, uint32(len(data)))
		res = append(append(res, data...), 0x90)
		reply := nats.NewMsg(m.Reply)
		reply.Data = res
		reply.Header.Set("Ferry-Stages-Ns", "1000 2000 3000 4000 5000")
		if err := nc.PublishMsg(reply); err != nil {
			t.Errorf("native worker: reply: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	// Subscribed first, then INFO: no batch meets "no responders".
	info := fmt.Sprintf(`{"type":"io.nats.micro.v1.info_response","name":"ferry-worker","id":%q,"version":"0.1.0",`+
		`"metadata":{},"description":"","endpoints":[{"name":"batch","subject":%q,"queue_group":"","metadata":null}]}`, id, subject)
	isub, err := nc.Subscribe("$SRV.INFO.ferry-worker", func(m *nats.Msg) { _ = m.Respond([]byte(info)) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { isub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := nc.LastError(); err != nil { // a permissions violation arrives asynchronously
		t.Fatal(err)
	}
}

func TestNativeWorkerJoinsACoordinatorsJob(t *testing.T) {
	docs := make([]string, 300)
	for i := range docs {
		docs[i] = fmt.Sprintf("document %d", i)
	}
	cfg := coordinator.Config{Workload: "noop", Params: workload.Params{OutBytes: 12}, BatchSize: 25, Workers: 1, WorkerWait: 10 * time.Second}
	run := func(t *testing.T, b coordinator.Backend) *coordinator.Stats {
		t.Helper()
		st, err := coordinator.Run(context.Background(), cfg, corpus.Slice(docs), b, sink.Discard{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	local, err := coordinator.NewLocal(coordinator.ModeSerial, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	want := run(t, local)

	for _, tc := range []struct {
		name          string
		users         []broker.User // none: anonymous, login "_"
		worker, coord string        // logins
	}{
		{name: "anonymous", worker: "_", coord: "_"},
		{name: "logins with ferry's roles", worker: "w1", coord: "c1", users: []broker.User{
			{Name: "w1", Password: "w1-secret", Role: broker.RoleWorker},
			{Name: "c1", Password: "c1-secret", Role: broker.RoleCoordinator},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := natstest.NewBroker(t, broker.Options{Users: tc.users}).URL()
			login := func(name string) []nats.Option {
				opts := []nats.Option{nats.CustomInboxPrefix("_INBOX." + name)}
				if len(tc.users) > 0 {
					opts = append(opts, nats.UserInfo(name, name+"-secret"))
				}
				return opts
			}
			nativeWorker(t, natstest.Connect(t, url, login(tc.worker)...), tc.worker, "native1", tc.coord)
			native, err := coordinator.NewProcesses(natstest.Connect(t, url, login(tc.coord)...), cfg, 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := run(t, native)
			if got.Docs != int64(len(docs)) || got.Digest != want.Digest || got.Forged != 0 {
				t.Fatalf("native worker: %d documents, digest %s, %d forged; compiled noop %s", got.Docs, got.Digest, got.Forged, want.Digest)
			}
			if p := got.Stages[coordinator.StagePipe]; p.N == 0 || p.P50 != 4*time.Microsecond {
				t.Errorf("pipe stage %+v, want the header's fourth field, 4 us", p)
			}
			if q := got.Stages[coordinator.StageQueue]; q.N == 0 || q.P50 != 5*time.Microsecond {
				t.Errorf("queue stage %+v, want the header's fifth field, 5 us", q)
			}
		})
	}
}

// program is an exec program written from the page alone: frames read
// with io.ReadFull, batches with a generic msgpack decoder, replies
// written byte by byte, echoing the batch's id, attempt and token. It
// upper-cases each document into bytes of any length (ends), and fails a
// document "bad".
func program(stdin io.Reader, stdout io.Writer) error {
	var head [4]byte
	for {
		if _, err := io.ReadFull(stdin, head[:]); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		payload := make([]byte, binary.BigEndian.Uint32(head[:]))
		if _, err := io.ReadFull(stdin, payload); err != nil {
			return err
		}
		var batch []any
		if err := msgpack.Unmarshal(payload, &batch); err != nil {
			return err
		}
		if len(batch) != 7 {
			return fmt.Errorf("batch of %d fields, the page says 7", len(batch))
		}
		tok, ok := binOf(batch[2])
		if !ok || len(tok) != 16 {
			return fmt.Errorf("token %#v, the page says 16 bytes", batch[2])
		}
		var data, ends, errs []byte
		nerr := 0
		for i, d := range batch[6].([]any) {
			s := d.(string)
			if s == "bad" {
				errs = append(append(errs, 0x92, byte(i), 0xa3), "bad"...) // documents < 128: a fixint
				nerr++
				s = ""
			}
			data = append(data, strings.ToUpper(s)...)
			ends = binary.LittleEndian.AppendUint32(ends, uint32(len(data)))
		}
		res := []byte{0x92, 0xd3, 0, 0, 0, 0, 0, 0, 0x05, 0xdc} // [compute_ns 1500 as int64,
		res = append(res, 0x9a, 0xcf)                           //  [batch_id as uint64,
		res = binary.BigEndian.AppendUint64(res, uintOf(batch[0]))
		res = append(res, 0xce) // attempt as uint32
		res = binary.BigEndian.AppendUint32(res, uint32(uintOf(batch[1])))
		res = append(append(res, 0xc4, 16), tok...)                 // token
		res = append(res, 0x00, 0xc4, 0x00, 0xc4, 0x00, 0x00, 0xc6) // dim 0, vecs, spans, stride 0, data
		res = binary.BigEndian.AppendUint32(res, uint32(len(data)))
		res = append(append(res, data...), 0x90|byte(nerr))
		res = append(append(res, errs...), 0xc6)
		res = binary.BigEndian.AppendUint32(res, uint32(len(ends)))
		res = append(res, ends...)
		frame := binary.BigEndian.AppendUint32(nil, uint32(len(res)))
		if _, err := stdout.Write(append(frame, res...)); err != nil {
			return err
		}
	}
}

// binOf reads a msgpack bin as a generic decoder returns it: bytes, or
// (vmihailenco/msgpack's loose decoding) a string.
func binOf(v any) ([]byte, bool) {
	switch x := v.(type) {
	case []byte:
		return x, true
	case string:
		return []byte(x), true
	}
	return nil, false
}

// uintOf reads a msgpack uint as a generic decoder returns it.
func uintOf(v any) uint64 {
	switch x := v.(type) {
	case int8:
		return uint64(x)
	case int16:
		return uint64(x)
	case int32:
		return uint64(x)
	case int64:
		return uint64(x)
	case uint8:
		return uint64(x)
	case uint16:
		return uint64(x)
	case uint32:
		return uint64(x)
	case uint64:
		return x
	}
	return 0
}

func TestExecProgramWrittenFromThePage(t *testing.T) {
	// The page's request frame, straight to the program: it echoes the
	// batch's id, attempt and token.
	var out bytes.Buffer
	if err := program(bytes.NewReader(unhex(t, noopFrame+noopBatch)), &out); err != nil {
		t.Fatal(err)
	}
	frame, err := proto.ReadFrame(&out, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var res proto.Result
	compute, err := proto.DecodeExecReply(frame, &res)
	if err != nil {
		t.Fatal(err)
	}
	if compute != 1500 || res.BatchID != 1 || res.Attempt != 1 || res.Token != exampleToken ||
		string(res.Out.Doc(0)) != "FERRY" || string(res.Out.Doc(1)) != "GO" || out.Len() != 0 {
		t.Errorf("reply to the page's request: compute %v, %+v, %d bytes more", compute, res, out.Len())
	}

	pool := bridge.NewPool(bridge.Config{Command: fmt.Sprintf("%s=1 exec %q -test.run=^$", envProgram, os.Args[0])})
	t.Cleanup(func() { pool.Close() })
	w := pool.New(workload.Params{})
	for range 3 { // ids grow: the program echoes each
		var out workload.Output
		errs, err := workload.ComputeBatch(w, []string{"ferry", "bad", "go"}, &out, nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(out.Doc(0)) != "FERRY" || string(out.Doc(1)) != "" || string(out.Doc(2)) != "GO" {
			t.Errorf("documents %q %q %q", out.Doc(0), out.Doc(1), out.Doc(2))
		}
		if len(errs) != 1 || errs[0].Doc != 1 || errs[0].Msg != "bad" {
			t.Errorf("errs = %+v, want document 1", errs)
		}
		if out.Hop <= 0 {
			t.Errorf("hop %v: the pipe's time is the batch's time less compute_ns", out.Hop)
		}
	}
}
