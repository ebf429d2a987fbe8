package faulttest

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ferrylab/ferry/internal/spawn"
	"github.com/ferrylab/ferry/sink"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/internal/childtest"
	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/ferrylab/ferry/internal/poison"
	"github.com/ferrylab/ferry/workload"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

var (
	seed = flag.Uint64("faults.seed", 1, "seed of the fault schedule (which documents, which workers)")
	long = flag.Bool("faults.long", false, "run the long fault suite: bigger jobs, more faults")
)

// ferryBin is a ferry binary with the test-only poison workload, built
// once; every worker is a real process.
var ferryBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if err := poison.Register(); err != nil { // the coordinator validates the job's workload here
		panic(err)
	}
	bin, cleanup, err := childtest.Build("github.com/ferrylab/ferry/internal/poison/ferrypoison")
	if err != nil {
		panic(err)
	}
	ferryBin = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// rng is the test's seeded source: the same -faults.seed gives the same
// documents, poison positions and victims (by rank), run after run.
func rng(t testing.TB) *rand.Rand {
	t.Logf("fault schedule seed %d (replay with -faults.seed %d)", *seed, *seed)
	return rand.New(rand.NewPCG(*seed, 0xfa17))
}

// docs returns n distinct short documents.
func docs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("document %d: the quick brown fox jumps over lazy dog %d", i, i*7919%1000)
	}
	return out
}

// pool starts n `ferry worker` processes on url and stops them on cleanup.
// Their output goes to a file that is printed if the test fails.
func pool(t testing.TB, url string, n int, restart bool, env ...string) *spawn.Pool {
	t.Helper()
	return poolWith(t, url, n, restart, nil, env...)
}

// poolWith is pool with extra `ferry worker` arguments.
func poolWith(t testing.TB, url string, n int, restart bool, args []string, env ...string) *spawn.Pool {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "workers.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	p, err := spawn.Start(context.Background(), spawn.Config{
		Exe:       ferryBin,
		Args:      append([]string{"worker", "--nats-url", url, "--log-level", "warn", "--parent-pid", strconv.Itoa(os.Getpid())}, args...),
		Procs:     n,
		Env:       env,
		Restart:   restart,
		StopGrace: 5 * time.Second,
		Stdout:    f,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("worker output (last 4 KiB):\n%s", tail(b, 4096))
		}
	})
	return p
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// connect opens a connection with ferry's own client options (unlimited
// reconnects, reconnect buffer), as the coordinator in `ferry` does.
func connect(t testing.TB, url, name string) *nats.Conn {
	t.Helper()
	opts, err := natsconn.Options(name, natsconn.Auth{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// attachedPIDs asks the fleet who is registered (micro $SRV.PING; each
// worker puts its pid in its metadata).
func attachedPIDs(nc *nats.Conn) []int {
	subj, _ := micro.ControlSubject(micro.PingVerb, "ferry-worker", "")
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subj, inbox, nil); err != nil {
		return nil
	}
	var pids []int
	for {
		m, err := sub.NextMsg(150 * time.Millisecond)
		if err != nil {
			break
		}
		var info micro.Ping
		if json.Unmarshal(m.Data, &info) == nil {
			if pid, err := strconv.Atoi(info.Metadata["pid"]); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	slices.Sort(pids)
	return pids
}

// source yields docs and calls at(i) before document i when set: the
// tests inject faults at fixed points of the input, so a fault always
// lands while batches are in flight whatever the machine's speed.
type source struct {
	docs []string
	next int
	at   func(i int)
}

func (s *source) Next() (corpus.Doc, error) {
	if s.next >= len(s.docs) {
		return corpus.Doc{}, io.EOF
	}
	if s.at != nil {
		s.at(s.next)
	}
	s.next++
	return corpus.Doc{Index: int64(s.next - 1), Text: s.docs[s.next-1]}, nil
}

// Len is -1, as for a file: auto batching does not shrink the last batches.
func (s *source) Len() int64 { return -1 }

func (s *source) Close() error { return nil }

// ledger is the checking sink: it records how many times each input
// document was written, that writes arrive in input order, and that each
// written row is that document's own result (spin output is a hash of the
// text, so it is recomputed here cheaply).
type ledger struct {
	mu       sync.Mutex
	want     []byte // expected spin output, stride bytes per document
	stride   int
	writes   []int
	failed   []bool
	next     int64
	disorder int   // writes that did not continue the written prefix
	wrong    int   // rows whose bytes are not the document's result
	outside  int   // rows for indices outside the input
	progress []int // written prefix over time, sampled at each write
	stamps   []time.Time
}

func newLedger(t testing.TB, d []string, p workload.Params) *ledger {
	t.Helper()
	p.SpinCostNs = 1 // the output depends only on the text, not the cost
	p.Args = ""      // the poison workload's: it computes spin
	wl, err := workload.New("spin", p)
	if err != nil {
		t.Fatal(err)
	}
	var out workload.Output
	if err := wl.Process(d, &out); err != nil {
		t.Fatal(err)
	}
	return &ledger{want: out.Data, stride: out.Stride, writes: make([]int, len(d)), failed: make([]bool, len(d))}
}

func (l *ledger) Write(first int64, o *workload.Output, failed []bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if first != l.next {
		l.disorder++
	}
	for i, f := range failed {
		idx := first + int64(i)
		if idx < 0 || idx >= int64(len(l.writes)) {
			l.outside++
			continue
		}
		if f {
			l.failed[idx] = true
			continue
		}
		l.writes[idx]++
		if o.Stride != l.stride || !bytes.Equal(o.Data[i*o.Stride:(i+1)*o.Stride], l.want[int(idx)*l.stride:int(idx+1)*l.stride]) {
			l.wrong++
		}
	}
	l.next = first + int64(len(failed))
	l.progress = append(l.progress, int(l.next))
	l.stamps = append(l.stamps, time.Now())
	return nil
}

func (l *ledger) Close() error { return nil }

// prefix is how many documents have been written (or failed) in order.
func (l *ledger) prefix() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next
}

// maxStall is the longest time the written prefix did not move after
// since: how long the worst fault held the job up.
func (l *ledger) maxStall(since time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var worst time.Duration
	last := since
	for _, s := range l.stamps {
		worst = max(worst, s.Sub(last))
		last = s
	}
	return worst
}

// firstWriteAfter is when the prefix first moved after t (zero if never).
func (l *ledger) firstWriteAfter(t time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.stamps {
		if s.After(t) {
			return s
		}
	}
	return time.Time{}
}

// verdict is the Jepsen-style account of a run over the whole input.
type verdict struct {
	Attempted  int // documents in the input
	Completed  int // written exactly once with their own result
	Failed     []int
	Lost       int // neither written nor reported failed
	Duplicated int // written more than once
	Unexpected int // wrong bytes, out of order, out of range, or failed but not expected to
}

func (l *ledger) verdict(expectFailed ...int) verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := verdict{Attempted: len(l.writes), Unexpected: l.disorder + l.wrong + l.outside}
	for i, n := range l.writes {
		switch {
		case l.failed[i]:
			v.Failed = append(v.Failed, i)
			if n > 0 || !slices.Contains(expectFailed, i) {
				v.Unexpected++
			}
		case n == 0:
			v.Lost++
		case n > 1:
			v.Duplicated++
		default:
			v.Completed++
		}
	}
	return v
}

func (v verdict) String() string {
	return fmt.Sprintf("attempted=%d completed=%d failed=%v lost=%d duplicated=%d unexpected=%d",
		v.Attempted, v.Completed, v.Failed, v.Lost, v.Duplicated, v.Unexpected)
}

// check fails t unless every document completed exactly once, except the
// expected failures, which must be reported and not written.
func (v verdict) check(t testing.TB, expectFailed ...int) {
	t.Helper()
	if v.Lost != 0 || v.Duplicated != 0 || v.Unexpected != 0 || !slices.Equal(v.Failed, expectFailed) ||
		v.Completed != v.Attempted-len(expectFailed) {
		t.Errorf("result set: %s; want every document once, failed=%v", v, expectFailed)
	}
}

// summary is the one line each fault test prints (and docs/faults.md quotes).
func summary(t testing.TB, name string, v verdict, st *coordinator.Stats, extra string) {
	t.Helper()
	t.Logf("%s: %s | batches=%d retries=%d requeues=%d splits=%d dupes_discarded=%d wall=%s %s",
		name, v, st.Batches, st.Retries, st.Requeues, st.Splits, st.Dupes, st.Wall.Round(time.Millisecond), extra)
}

// job is the processes-mode job the tests run: spin, a known cost per
// document whose output is a hash of the text.
func job(batch int, spin time.Duration) coordinator.Config {
	return coordinator.Config{
		Workload:  "spin",
		Params:    workload.Params{SpinCostNs: int64(spin)},
		BatchSize: batch,
		InFlight:  2,
	}
}

// run runs cfg over src on the processes backend and returns its stats.
func run(ctx context.Context, t testing.TB, nc *nats.Conn, cfg coordinator.Config, expect int, src corpus.Source, out sink.Writer, log *slog.Logger) (*coordinator.Stats, error) {
	t.Helper()
	be, err := coordinator.NewProcesses(nc, cfg, expect, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	return coordinator.Run(ctx, cfg, src, be, out)
}

// logBuffer is a goroutine-safe log destination the tests read back.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
