package faulttest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/internal/poll"
	"github.com/ferrylab/ferry/internal/spawn"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/report"
	"github.com/ferrylab/ferry/workload"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// jsBroker starts a broker with JetStream on a test-owned store.
func jsBroker(t testing.TB) *broker.Broker {
	t.Helper()
	return natstest.NewBroker(t, broker.Options{JetStream: true, StoreDir: t.TempDir()})
}

// subjectCount counts the stored messages of stream under filter, one per
// subject for the results stream.
func subjectCount(t testing.TB, nc *nats.Conn, stream, filter string) int {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0 // not created yet
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0
	}
	return len(info.State.Subjects)
}

// TestJetStreamCoordinatorKilled: `ferry coordinator --dispatch jetstream`
// is SIGKILLed mid-job and started again with the same --job-id. The second
// run takes every batch acknowledged before the kill from the results stream
// (resumed_batches), computes only the rest, and writes every document
// exactly once, in order, with its own result.
func TestJetStreamCoordinatorKilled(t *testing.T) {
	r := rng(t)
	n, batch, workers := 6_000, 10, 3
	if *long {
		n = 30_000
	}
	d := docs(n)
	params := workload.Params{SpinCostNs: int64(300 * time.Microsecond)}
	l := newLedger(t, d, params)
	dir := t.TempDir()
	input := filepath.Join(dir, "docs.txt")
	if err := os.WriteFile(input, []byte(strings.Join(d, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := jsBroker(t)
	fleet := poolWith(t, b.URL(), workers, true, []string{"--dispatch", "jetstream"})
	probe := connect(t, b.URL(), "probe")
	job := fmt.Sprintf("killtest-%d", *seed)
	results := proto.ResultSubjectPrefix + "." + job + ".>"
	// Every result any worker publishes, in either run, by subject (range):
	// a range published twice was computed twice. A batch a stopping
	// worker handed back uncomputed is counted apart.
	var mu sync.Mutex
	published := map[string]int{}
	handedBack := map[string]bool{}
	sub, err := probe.Subscribe(results, func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasPrefix(m.Header.Get(proto.HeaderError), proto.ErrCodeHandBack) {
			handedBack[m.Subject] = true
			return
		}
		published[m.Subject]++
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := probe.Flush(); err != nil {
		t.Fatal(err)
	}
	coordinator := func(out string) *exec.Cmd {
		cmd := exec.Command(ferryBin, "coordinator", "-q", "--nats-url", b.URL(), "--dispatch", "jetstream", "--job-id", job,
			"--input", input, "--workload", "spin", "--spin-cost", "300us", "--batch-size", strconv.Itoa(batch),
			"--workers", strconv.Itoa(workers), "--format", "json", "--log-level", "info", "--out", out)
		return cmd
	}

	// Run 1: killed once a random share (20%..60%) of the batches is done.
	killAt := (n / batch) * (20 + r.IntN(40)) / 100
	first := coordinator(filepath.Join(dir, "run1.jsonl"))
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Process.Kill(); first.Wait() })
	poll.WaitFor(t, 2*time.Minute, "the first run to get going", func() bool {
		return subjectCount(t, probe, proto.ResultStream, results) >= killAt
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	// Stop the fleet too (SIGTERM: finish the batch in hand, hand back the
	// one fetched ahead): what is acknowledged stays put until run 2 has
	// read it, and the batches run 1 queued but nobody took stay queued.
	fleet.Stop()
	// The stopping workers hand back the batches they fetched ahead: their
	// ranges hold a note, not a result.
	mu.Lock()
	notes := 0
	for subj := range handedBack {
		if published[subj] == 0 {
			notes++
		}
	}
	mu.Unlock()
	acked := subjectCount(t, probe, proto.ResultStream, results) - notes
	leftover := subjectCount(t, probe, proto.BatchStream, proto.BatchSubjectPrefix+"."+job+".>")

	// Run 2: same job ID. The new fleet starts once run 2 has dropped the
	// stale batches and listed the stored results (it logs that).
	second := coordinator(filepath.Join(dir, "run2.jsonl"))
	var stdout2 bytes.Buffer
	var stderr2 logBuffer
	second.Stdout, second.Stderr = &stdout2, &stderr2
	start := time.Now()
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Process.Kill(); second.Wait() })
	poll.WaitFor(t, time.Minute, "run 2 to index the stored results", func() bool {
		return strings.Contains(stderr2.String(), "jetstream dispatch")
	})
	poolWith(t, b.URL(), workers, true, []string{"--dispatch", "jetstream"})
	if err := second.Wait(); err != nil {
		t.Fatalf("second run: %v\n%s", err, stderr2.String())
	}
	var rep report.Report
	if err := json.Unmarshal(stdout2.Bytes(), &rep); err != nil || len(rep.Modes) != 1 {
		t.Fatalf("report: %v\n%s", err, stdout2.String())
	}
	m := rep.Modes[0]
	v := checkJSONL(t, filepath.Join(dir, "run2.jsonl"), l)
	mu.Lock()
	twice := 0
	for _, c := range published {
		if c > 1 {
			twice++
		}
	}
	ranges := len(published)
	mu.Unlock()
	t.Logf("jetstream-coordinator-kill: %s | killed_after=%d batches acked_at_restart=%d handed_back=%d unacked_dropped=%d resumed=%d computed=%d computed_twice=%d retries=%d dupes_discarded=%d second_run_wall=%s",
		v, killAt, acked, notes, leftover, m.Resumed, m.Batches-m.Resumed, twice, m.Retries, m.Duplicates, time.Since(start).Round(time.Millisecond))
	v.check(t)
	if m.Mode != "processes/jetstream" || m.Docs != int64(n) {
		t.Errorf("mode %q wrote %d documents, want processes/jetstream and %d", m.Mode, m.Docs, n)
	}
	if m.Resumed != int64(acked) {
		t.Errorf("resumed %d batches, want every one acknowledged before the kill (%d)", m.Resumed, acked)
	}
	if want := int64(n / batch); m.Batches != want || m.Splits != 0 {
		t.Errorf("batches = %d (splits %d), want %d", m.Batches, m.Splits, want)
	}
	if twice != 0 || ranges != n/batch {
		t.Errorf("%d ranges computed twice, %d ranges computed in all; want 0 and %d", twice, ranges, n/batch)
	}
	if leftover == 0 {
		t.Logf("no unacknowledged batches were left to drop (the fleet emptied the queue before it stopped)")
	}
	if acked < killAt || acked >= n/batch {
		t.Errorf("%d batches acknowledged at the kill, want between %d and %d", acked, killAt, n/batch-1)
	}
	// A finished job's results are dropped.
	if left := subjectCount(t, probe, proto.ResultStream, results); left != 0 {
		t.Errorf("%d results left in the stream after the job finished", left)
	}
}

// checkJSONL reads a .jsonl output and checks it against the ledger's
// expected results, the Jepsen way.
func checkJSONL(t testing.TB, path string, l *ledger) verdict {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			Index int64  `json:"index"`
			Data  string `json:"data"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			l.mu.Lock()
			l.wrong++
			l.mu.Unlock()
			continue
		}
		data, err := base64.StdEncoding.DecodeString(rec.Data)
		if err != nil {
			data = nil
		}
		out := workload.Output{Stride: l.stride, Data: data}
		if len(data) != l.stride {
			out.Data = make([]byte, l.stride) // counted as wrong below
		}
		l.Write(rec.Index, &out, []bool{false})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return l.verdict()
}

// TestJetStreamWorkersKilled: dispatch=jetstream while workers are
// SIGKILLed. A dead worker's batch is redelivered after AckWait; results of
// a batch run twice are dropped; every document is written exactly once.
func TestJetStreamWorkersKilled(t *testing.T) {
	r := rng(t)
	n, kills, workers := 10_000, 5, 3
	d := docs(n)
	cfg := job(10, 20*time.Microsecond)
	cfg.BatchTimeout = 500 * time.Millisecond // AckWait

	b := jsBroker(t)
	p := poolWith(t, b.URL(), workers, true, []string{"--dispatch", "jetstream"})
	nc := connect(t, b.URL(), "ferry-coordinator")
	src, killed := signalling(r, p, d, faultPoints(r, n, kills), syscall.SIGKILL)
	l := newLedger(t, d, cfg.Params)
	be, err := coordinator.NewJetStream(nc, cfg, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := coordinator.Run(ctx, cfg, src, be, l)
	if err != nil {
		t.Fatalf("job: %v", err)
	}
	v := l.verdict()
	summary(t, "jetstream-sigkill", v, st, fmt.Sprintf("kills=%d restarts=%d", *killed, p.Restarts()))
	v.check(t)
	if *killed != kills {
		t.Errorf("kills = %d, want %d", *killed, kills)
	}
}

// signalling is a source of d that sends sig to one of p's workers, at
// random, before each document in points; *sent counts the signals sent.
func signalling(r *rand.Rand, p *spawn.Pool, d []string, points []int, sig syscall.Signal) (src *source, sent *int) {
	sent = new(int)
	src = &source{docs: d, at: func(i int) {
		for len(points) > 0 && points[0] == i {
			points = points[1:]
			pids := p.PIDs()
			if len(pids) > 0 && syscall.Kill(pids[r.IntN(len(pids))], sig) == nil {
				*sent++
			}
		}
	}}
	return src, sent
}

// TestJetStreamPoisonKillsWorker: with dispatch=jetstream, a document that
// kills its worker is redelivered MaxAttempts times, then the next worker
// answers with a give-up result and terminates it, and the coordinator
// halves the batch until the document is alone and reported.
func TestJetStreamPoisonKillsWorker(t *testing.T) {
	t.Parallel() // mostly waiting out deadlines: overlaps with the other waiting tests
	// batch_timeout is AckWait: how soon a dead worker's batch is redelivered.
	jsBadDocument(t, "jetstream-poison-crash", 2_000, 400*time.Millisecond, "FERRY_TEST_CRASH_ON")
}

// jsBadDocument runs a jetstream job of n documents, batch_timeout
// timeout, on 3 workers that the test hook env makes die or hang on one of
// them. That document alone must be reported, by index, as poison, every
// other one written once, and the workers must exit between 3 and
// max_attempts x (bisection levels) times.
func jsBadDocument(t *testing.T, name string, n int, timeout time.Duration, env string) {
	t.Helper()
	r := rng(t)
	d := docs(n)
	bad := r.IntN(n)
	cfg := job(10, 20*time.Microsecond)
	cfg.BatchTimeout = timeout

	b := jsBroker(t)
	p := poolWith(t, b.URL(), 3, true, jsArgs, env+"="+d[bad])
	nc := connect(t, b.URL(), "ferry-coordinator")
	l := newLedger(t, d, cfg.Params)
	st, err := jsJob(context.Background(), t, nc, cfg, "", &source{docs: d}, l, nil, 3*time.Minute)
	v := l.verdict(bad)
	bound := cfg.WithDefaults().MaxAttempts * (bits.Len(uint(cfg.BatchSize-1)) + 1)
	summary(t, name, v, st, fmt.Sprintf("bad=%d worker_exits=%d (bound %d) err=%q", bad, p.Restarts(), bound, err))
	if !errors.Is(err, coordinator.ErrDocsFailed) {
		t.Fatalf("err = %v, want ErrDocsFailed", err)
	}
	v.check(t, bad)
	if len(st.Failed) != 1 || st.Failed[0].Index != int64(bad) || !strings.Contains(st.Failed[0].Error, "poison") {
		t.Errorf("failed = %+v, want document %d as poison", st.Failed, bad)
	}
	if exits := p.Restarts(); exits < 3 || exits > bound {
		t.Errorf("workers exited %d times, want between 3 and %d (max_attempts per bisection level)", exits, bound)
	}
}

// TestJetStreamBrokerRestart: with dispatch=jetstream the broker is shut
// down mid-job and started again on the same port and store. The streams
// survive on disk, publishes are retried, the results consumer and the
// workers' pulls resume, and the job completes with nothing lost.
func TestJetStreamBrokerRestart(t *testing.T) {
	r := rng(t)
	n, workers := 6_000, 3
	d := docs(n)
	cfg := job(10, 20*time.Microsecond)
	cfg.BatchTimeout = time.Second // AckWait

	store := t.TempDir()
	b := natstest.NewBroker(t, broker.Options{JetStream: true, StoreDir: store})
	u, err := url.Parse(b.URL())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	p := poolWith(t, b.URL(), workers, true, []string{"--dispatch", "jetstream"})
	nc := connect(t, b.URL(), "ferry-coordinator")
	at := n/4 + r.IntN(n/2)
	var upAt time.Time
	src := &source{docs: d, at: func(i int) {
		if i == at {
			b.Shutdown()
			b = natstest.NewBroker(t, broker.Options{JetStream: true, StoreDir: store, Port: port})
			upAt = time.Now()
		}
	}}
	l := newLedger(t, d, cfg.Params)
	be, err := coordinator.NewJetStream(nc, cfg, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := coordinator.Run(ctx, cfg, src, be, l)
	if err != nil {
		t.Fatalf("job: %v", err)
	}
	v := l.verdict()
	var recovery time.Duration
	if w := l.firstWriteAfter(upAt); !w.IsZero() {
		recovery = w.Sub(upAt)
	}
	summary(t, "jetstream-broker-restart", v, st, fmt.Sprintf("recovery=%s reconnects=%d worker_restarts=%d",
		recovery.Round(time.Millisecond), nc.Stats().Reconnects, p.Restarts()))
	v.check(t)
	if upAt.IsZero() || nc.Stats().Reconnects == 0 {
		t.Errorf("the broker was not restarted mid-job")
	}
}

// TestJetStreamNoWorkers: with dispatch=jetstream and no worker pulling,
// the coordinator says so once and gives up after WorkerWait with
// ErrNoWorkers; the batches stay queued, and a run with the same job ID
// once workers are up completes the job.
func TestJetStreamNoWorkers(t *testing.T) {
	t.Parallel() // mostly waiting out deadlines: overlaps with the other waiting tests
	n := 2_000
	d := docs(n)
	cfg := job(10, 20*time.Microsecond)
	cfg.WorkerWait = 2 * time.Second
	cfg.BatchTimeout = time.Second

	b := jsBroker(t)
	nc := connect(t, b.URL(), "ferry-coordinator")
	var logs logBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	be, err := coordinator.NewJetStream(nc, cfg, "noworkers", log)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = coordinator.Run(ctx, cfg, &source{docs: d}, be, newLedger(t, d, cfg.Params))
	gaveUp := time.Since(start)
	if !errors.Is(err, coordinator.ErrNoWorkers) {
		t.Fatalf("err = %v, want ErrNoWorkers", err)
	}
	if got := strings.Count(logs.String(), "no workers pulling batches; waiting"); got != 1 {
		t.Errorf("said %d times that no worker is pulling, want once; log:\n%s", got, logs.String())
	}
	queued := subjectCount(t, nc, proto.BatchStream, proto.BatchSubjectPrefix+".noworkers.>")

	poolWith(t, b.URL(), 2, false, []string{"--dispatch", "jetstream"})
	be, err = coordinator.NewJetStream(nc, cfg, "noworkers", log)
	if err != nil {
		t.Fatal(err)
	}
	l := newLedger(t, d, cfg.Params)
	st, err := coordinator.Run(ctx, cfg, &source{docs: d}, be, l)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	v := l.verdict()
	summary(t, "jetstream-no-workers", v, st, fmt.Sprintf("gave_up_after=%s queued_meanwhile=%d", gaveUp.Round(time.Millisecond), queued))
	v.check(t)
	if queued == 0 {
		t.Errorf("no batches were queued while no worker was up")
	}
}
