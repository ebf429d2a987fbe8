package faulttest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/internal/poll"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/sink"
	"github.com/ferrylab/ferry/worker"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The JetStream rows of the abuse suite (issue 13, "trust nothing from the
// wire"). Each job must end within its bound (the harness's deadline),
// every good document must be written once with a serial run's output (the
// ledger recomputes it) and every bad one must be reported by its index.

// jsArgs makes a `ferry worker` pull from the batch stream.
var jsArgs = []string{"--dispatch", "jetstream"}

// errUnbounded is what jsJob returns for a job that did not end in time.
var errUnbounded = errors.New("faulttest: the job did not end within its bound")

// jsJob runs cfg over src as the JetStream job id and returns its stats.
// The job must end within bound: one still running then fails the test,
// and a coordinator that has not returned 30 s later, although its context
// ended, is hung and abandoned. It may be called from any goroutine.
func jsJob(ctx context.Context, t testing.TB, nc *nats.Conn, cfg coordinator.Config, id string, src corpus.Source, out sink.Writer, log *slog.Logger, bound time.Duration) (*coordinator.Stats, error) {
	t.Helper()
	be, err := coordinator.NewJetStream(nc, cfg, id, log)
	if err != nil {
		t.Error(err)
		return &coordinator.Stats{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	type ended struct {
		st  *coordinator.Stats
		err error
	}
	done := make(chan ended, 1)
	go func() { // a hung Run is abandoned with the test binary
		st, err := coordinator.Run(ctx, cfg, src, be, out)
		done <- ended{st, err}
	}()
	var e ended
	select {
	case e = <-done:
	case <-time.After(bound + 30*time.Second):
		t.Errorf("job %s: the coordinator did not return within 30s of its %s deadline: hung", id, bound)
		return &coordinator.Stats{}, errUnbounded
	}
	if e.st == nil {
		e.st = &coordinator.Stats{}
	}
	if errors.Is(e.err, context.DeadlineExceeded) {
		t.Errorf("job %s did not end within %s: %v", id, bound, e.err)
		return e.st, fmt.Errorf("%w: %w", errUnbounded, e.err)
	}
	return e.st, e.err
}

// interruptedJob runs job id over d and cancels it once document stop is
// read, leaving the job's results in the stream for a resume.
func interruptedJob(t testing.TB, nc *nats.Conn, cfg coordinator.Config, id string, d []string, stop int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := &source{docs: d, at: func(i int) {
		if i == stop {
			cancel()
		}
	}}
	_, err := jsJob(ctx, t, nc, cfg, id, src, newLedger(t, d, cfg.Params), nil, 2*time.Minute)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("first run of job %s: err = %v, want it interrupted", id, err)
	}
	results := proto.ResultSubjectPrefix + "." + id + ".>"
	if got := subjectCount(t, nc, proto.ResultStream, results); got == 0 {
		t.Fatalf("first run of job %s left no results to resume", id)
	}
}

// forge publishes a message into the results stream as any client allowed
// to publish results could.
func forge(t testing.TB, js jetstream.JetStream, subject string, data []byte, h nats.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data, Header: h}); err != nil {
		t.Fatalf("forge %s: %v", subject, err)
	}
}

// TestJetStreamForgedRanges: results forged on a job's result subjects with
// impossible ranges (a count up to MaxInt64, first+count past MaxInt64, more
// documents than a batch may hold, past the job's end, across two batches),
// with an undecodable body or a huge delivery count, stored before a resume
// and published while the job runs. Each is dropped and counted; none hangs
// the coordinator; every document is computed or resumed correctly.
func TestJetStreamForgedRanges(t *testing.T) {
	n, workers := 2_000, 2
	d := docs(n)
	cfg := job(10, 20*time.Microsecond)
	cfg.BatchTimeout = 2 * time.Second
	const id = "forged"
	res := func(first int64, count string) string {
		return fmt.Sprintf("%s.%s.%d-%s", proto.ResultSubjectPrefix, id, first, count)
	}

	b := jsBroker(t)
	poolWith(t, b.URL(), workers, false, jsArgs)
	nc := connect(t, b.URL(), "ferry-coordinator")
	js, err := jetstream.New(connect(t, b.URL(), "forger"))
	if err != nil {
		t.Fatal(err)
	}
	interruptedJob(t, nc, cfg, id, d, n/4)

	junk := []byte("not a result")
	huge := nats.Header{proto.HeaderDelivery: {strconv.FormatInt(1<<63-1, 10)}}
	forged := []struct{ subject, why string }{
		{res(1500, "9223372036854775807"), "count up to MaxInt64"},
		{res(1<<63-1, "1"), "first+count past MaxInt64"},
		{res(1600, "100001"), "more documents than a batch may hold"},
		{res(int64(n)+10, "5"), "past the job's end"},
		{res(1705, "10"), "across two batches"},
		{res(1800, "10"), "undecodable body for a real batch's range"},
	}
	for _, f := range forged {
		forge(t, js, f.subject, junk, huge)
	}
	// More while the job runs, ahead of the batch being cut.
	live := []string{res(1900, "9223372036854775807"), res(1910, "10")}
	src := &source{docs: d, at: func(i int) {
		if i == n/2 {
			for _, s := range live {
				forge(t, js, s, junk, huge)
			}
		}
	}}
	var logs logBuffer
	l := newLedger(t, d, cfg.Params)
	st, err := jsJob(context.Background(), t, nc, cfg, id, src, l, slog.New(slog.NewTextHandler(&logs, nil)), 2*time.Minute)
	v := l.verdict()
	summary(t, "jetstream-forged-ranges", v, st, fmt.Sprintf("forged_discarded=%d resumed=%d err=%v", st.Forged, st.Resumed, err))
	if err != nil {
		t.Fatalf("job: %v\n%s", err, logs.String())
	}
	v.check(t)
	if st.Resumed == 0 {
		t.Errorf("resumed no batches: the genuine stored results were not used")
	}
	// Every forged message is dropped and counted once it is read; the
	// ones with impossible ranges are read at the latest when the job ends.
	if st.Forged < 4 {
		t.Errorf("forged_discarded = %d, want at least the 4 impossible ranges counted\n%s", st.Forged, logs.String())
	}
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("no error was logged for the forged results")
	}
}

// TestJetStreamHangingDocument: one document never finishes (the
// FERRY_TEST_HANG_ON hook, standing in for a model stuck in a loop). The
// batch holding it has a deadline, batch_timeout, in jetstream mode too: the
// worker stops vouching for it, hands the batch back and exits (the pool
// restarts it), so a hung document is isolated like a crashing one. After
// max_attempts deliveries the batch is halved, down to the document, which
// is reported by index; every other document is written.
func TestJetStreamHangingDocument(t *testing.T) {
	t.Parallel() // mostly waiting out deadlines: overlaps with the other waiting tests
	jsBadDocument(t, "jetstream-hang", 1_000, time.Second, worker.EnvHangOn)
}

// TestJetStreamResumeFingerprint: a job is stopped half way, then run again
// with the same job ID but another workload parameter, workload, codec or
// input. Each is refused with an error naming the job and what differs,
// before anything is written or changed in the stream; an input edited past
// its first document resumes only the ranges whose documents are the same.
// The job then resumes with its own settings.
func TestJetStreamResumeFingerprint(t *testing.T) {
	n, workers := 2_000, 2
	d := docs(n)
	cfg := job(10, 20*time.Microsecond)
	cfg.BatchTimeout = 2 * time.Second
	const id = "fingerprint"

	b := jsBroker(t)
	poolWith(t, b.URL(), workers, false, jsArgs)
	nc := connect(t, b.URL(), "ferry-coordinator")
	interruptedJob(t, nc, cfg, id, d, n/2)

	other := docs(n)
	other[0] = "another input altogether"
	for _, tc := range []struct {
		name string
		cfg  func(c *coordinator.Config)
		docs []string
		want string // in the error, besides the job ID
	}{
		{"another param", func(c *coordinator.Config) { c.Params.OutBytes = 32 }, d, "out_bytes"},
		{"another workload", func(c *coordinator.Config) { c.Workload = "noop" }, d, "workload"},
		{"another codec", func(c *coordinator.Config) { c.Codec = proto.CodecMsgpack }, d, "codec"},
		{"another input", func(*coordinator.Config) {}, other, "input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			tc.cfg(&c)
			l := newLedger(t, tc.docs, cfg.Params)
			_, err := jsJob(context.Background(), t, nc, c, id, &source{docs: tc.docs}, l, nil, time.Minute)
			if !errors.Is(err, coordinator.ErrResumeMismatch) || !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrResumeMismatch naming job %s and %q", err, id, tc.want)
			}
			if v := l.verdict(); v.Completed != 0 || v.Unexpected != 0 {
				t.Errorf("a refused resume wrote %s", v)
			}
		})
	}

	// Documents edited past the first: their ranges are computed again,
	// never taken from the stream.
	edited := docs(n)
	for i := 0; i < n; i += 97 {
		edited[i] += " (edited)"
	}
	edited[0] = d[0]
	l := newLedger(t, edited, cfg.Params)
	st, err := jsJob(context.Background(), t, nc, cfg, id, &source{docs: edited}, l, nil, 2*time.Minute)
	v := l.verdict()
	summary(t, "jetstream-resume-edited", v, st, fmt.Sprintf("resumed=%d forged_discarded=%d", st.Resumed, st.Forged))
	if err != nil {
		t.Fatalf("resume with edited documents: %v", err)
	}
	v.check(t)
	if st.Resumed == 0 {
		t.Errorf("resumed no batches: the ranges the edits left alone were computed again")
	}
}

// TestJetStreamTwoJobs: two jobs share one fleet at once. Job A has a
// document that kills its worker and a short batch_timeout, so its dead
// workers' batches come back quickly; job B, started while A runs, has a
// long one. Each job's consumer keeps its own settings: A isolates its bad
// document at its own pace, within its bound, and both write every good
// document once.
func TestJetStreamTwoJobs(t *testing.T) {
	t.Parallel() // mostly waiting out deadlines: overlaps with the other waiting tests
	r := rng(t)
	n, workers := 2_000, 3
	da := docs(n)
	db := make([]string, n)
	for i := range db {
		db[i] = fmt.Sprintf("job B, document %d", i)
	}
	bad := r.IntN(n)
	ca := job(10, 20*time.Microsecond)
	ca.BatchTimeout = 400 * time.Millisecond
	cb := job(10, 20*time.Microsecond)
	cb.BatchTimeout = 40 * time.Second

	b := jsBroker(t)
	poolWith(t, b.URL(), workers, true, jsArgs, "FERRY_TEST_CRASH_ON="+da[bad])
	nc := connect(t, b.URL(), "ferry-coordinator")
	la, lb := newLedger(t, da, ca.Params), newLedger(t, db, cb.Params)
	var wg sync.WaitGroup
	var sta, stb *coordinator.Stats
	var erra, errb error
	wg.Add(1)
	go func() {
		defer wg.Done()
		sta, erra = jsJob(context.Background(), t, nc, ca, "job-a", &source{docs: da}, la, nil, 2*time.Minute)
	}()
	if !poll.Until(time.Minute, func() bool { return la.prefix() > 0 }) {
		wg.Wait()
		t.Fatalf("job A never got going: %v", erra)
	}
	stb, errb = jsJob(context.Background(), t, nc, cb, "job-b", &source{docs: db}, lb, nil, 2*time.Minute)
	wg.Wait()
	va, vb := la.verdict(bad), lb.verdict()
	summary(t, "jetstream-two-jobs A", va, sta, fmt.Sprintf("poison=%d err=%v", bad, erra))
	summary(t, "jetstream-two-jobs B", vb, stb, fmt.Sprintf("err=%v", errb))
	if !errors.Is(erra, coordinator.ErrDocsFailed) {
		t.Errorf("job A: err = %v, want ErrDocsFailed", erra)
	}
	va.check(t, bad)
	if errb != nil {
		t.Errorf("job B: %v", errb)
	}
	vb.check(t)
}

// TestJetStreamEveryDocumentHangs is the issue's own case: every document
// spins for 50 s, batches of 2, batch_timeout 2s. Each batch is in turn
// the one a worker hangs on and the one the next worker fetched ahead and
// hands back when it hangs: the deliveries that came to nothing must
// survive the hand-back, or no batch ever reaches max_attempts and the job
// never ends. Every document is reported failed, by index.
func TestJetStreamEveryDocumentHangs(t *testing.T) {
	t.Parallel() // mostly waiting out deadlines: overlaps with the other waiting tests
	n, workers := 4, 2
	d := docs(n)
	cfg := job(2, 50*time.Second)
	cfg.BatchTimeout = 2 * time.Second

	b := jsBroker(t)
	p := poolWith(t, b.URL(), workers, true, jsArgs)
	nc := connect(t, b.URL(), "ferry-coordinator")
	l := newLedger(t, d, cfg.Params)
	st, err := jsJob(context.Background(), t, nc, cfg, "", &source{docs: d}, l, nil, 3*time.Minute)
	v := l.verdict(0, 1, 2, 3)
	summary(t, "jetstream-every-document-hangs", v, st, fmt.Sprintf("worker_exits=%d err=%q", p.Restarts(), err))
	if !errors.Is(err, coordinator.ErrDocsFailed) {
		t.Fatalf("err = %v, want ErrDocsFailed", err)
	}
	v.check(t, 0, 1, 2, 3)
}

// TestJetStreamRollingRestart: the workers are SIGTERMed one after another
// while a job runs, as a rolling restart does, and the pool starts each one
// again. A stopping worker finishes the batch in hand and hands back the one
// it fetched ahead without it counting as a delivery: no batch runs twice
// and none is taken for poison (max_attempts 2 would split it at once).
func TestJetStreamRollingRestart(t *testing.T) {
	r := rng(t)
	n, workers, rounds := 6_000, 3, 6
	d := docs(n)
	cfg := job(10, 200*time.Microsecond)
	cfg.BatchTimeout = 5 * time.Second // a graceful stop loses nothing: no deadline should fire
	cfg.MaxAttempts = 2

	b := jsBroker(t)
	p := poolWith(t, b.URL(), workers, true, jsArgs)
	nc := connect(t, b.URL(), "ferry-coordinator")
	src, stopped := signalling(r, p, d, faultPoints(r, n, rounds), syscall.SIGTERM)
	l := newLedger(t, d, cfg.Params)
	st, err := jsJob(context.Background(), t, nc, cfg, "", src, l, nil, 2*time.Minute)
	v := l.verdict()
	summary(t, "jetstream-rolling-sigterm", v, st, fmt.Sprintf("sigterm=%d restarts=%d err=%v", *stopped, p.Restarts(), err))
	if err != nil {
		t.Fatalf("job: %v", err)
	}
	v.check(t)
	if *stopped != rounds {
		t.Errorf("SIGTERMed %d workers, want %d", *stopped, rounds)
	}
	if st.Retries != 0 || st.Splits != 0 {
		t.Errorf("retries = %d, splits = %d: a graceful stop counted as a delivery", st.Retries, st.Splits)
	}
}

// TestJetStreamStoreLost: the job's streams vanish mid-job, deleted or with
// the broker's store directory (the broker restarts empty on the same
// port). The job ends within its bound with ErrStoreLost naming the job,
// and what it wrote before is right.
func TestJetStreamStoreLost(t *testing.T) {
	for _, tc := range []struct {
		name string
		lose func(t *testing.T, js jetstream.JetStream, b **broker.Broker, store string, port int)
	}{
		{"stream deleted", func(t *testing.T, js jetstream.JetStream, _ **broker.Broker, _ string, _ int) {
			if err := js.DeleteStream(context.Background(), proto.BatchStream); err != nil {
				t.Errorf("delete the batch stream: %v", err)
			}
		}},
		{"store dir removed", func(t *testing.T, _ jetstream.JetStream, b **broker.Broker, store string, port int) {
			(*b).Shutdown()
			if err := os.RemoveAll(store); err != nil {
				t.Error(err)
			}
			*b = natstest.NewBroker(t, broker.Options{JetStream: true, StoreDir: store, Port: port})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, workers := 4_000, 2
			d := docs(n)
			cfg := job(10, 100*time.Microsecond)
			cfg.BatchTimeout = time.Second

			store := t.TempDir()
			b := natstest.NewBroker(t, broker.Options{JetStream: true, StoreDir: store})
			u, err := url.Parse(b.URL())
			if err != nil {
				t.Fatal(err)
			}
			port, _ := strconv.Atoi(u.Port())
			poolWith(t, b.URL(), workers, true, jsArgs)
			nc := connect(t, b.URL(), "ferry-coordinator")
			js, err := jetstream.New(connect(t, b.URL(), "vandal"))
			if err != nil {
				t.Fatal(err)
			}
			src := &source{docs: d, at: func(i int) {
				if i == n/3 {
					tc.lose(t, js, &b, store, port)
				}
			}}
			l := newLedger(t, d, cfg.Params)
			st, err := jsJob(context.Background(), t, nc, cfg, "store-job", src, l, nil, 2*time.Minute)
			v := l.verdict()
			summary(t, "jetstream-store-lost "+tc.name, v, st, fmt.Sprintf("err=%v", err))
			if !errors.Is(err, coordinator.ErrStoreLost) || !strings.Contains(err.Error(), "job store-job") {
				t.Fatalf("err = %v, want ErrStoreLost naming the job", err)
			}
			if v.Duplicated != 0 || v.Unexpected != 0 || v.Completed == 0 {
				t.Errorf("before the loss: %s; want some written, each once and right", v)
			}
		})
	}
}

// TestJetStreamWorkerVouchesForever: a client with a worker's rights takes
// a batch and tells the server it is still working on it, forever, as a
// buggy worker or a stolen worker credential could. The coordinator's own
// deadline for a taken batch gives up on it and halves it; the real
// workers compute the halves and the job ends with every document written.
func TestJetStreamWorkerVouchesForever(t *testing.T) {
	t.Parallel() // mostly waiting out deadlines: overlaps with the other waiting tests
	n, workers := 2_000, 2
	d := docs(n)
	cfg := job(10, 20*time.Microsecond)
	cfg.BatchTimeout = 500 * time.Millisecond
	const id = "vouched"

	b := jsBroker(t)
	nc := connect(t, b.URL(), "ferry-coordinator")
	js, err := jetstream.New(connect(t, b.URL(), "rogue"))
	if err != nil {
		t.Fatal(err)
	}
	type ended struct {
		st  *coordinator.Stats
		err error
	}
	done := make(chan ended, 1)
	l := newLedger(t, d, cfg.Params)
	go func() {
		st, err := jsJob(context.Background(), t, nc, cfg, id, &source{docs: d}, l, nil, 2*time.Minute)
		done <- ended{st, err}
	}()
	// The rogue takes the first batch before any worker is up.
	var cons jetstream.Consumer
	poll.WaitFor(t, time.Minute, "the job's consumer", func() bool {
		cons, err = js.Consumer(context.Background(), proto.BatchStream, proto.JobConsumer(id))
		return err == nil
	})
	m, err := cons.Next(jetstream.FetchMaxWait(time.Minute))
	if err != nil {
		t.Fatalf("the rogue took no batch: %v", err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // vouches until the job has ended
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = m.InProgress()
			}
		}
	}()
	poolWith(t, b.URL(), workers, false, jsArgs)
	e := <-done
	close(stop)
	wg.Wait()
	v := l.verdict()
	summary(t, "jetstream-vouches-forever", v, e.st, fmt.Sprintf("held=%s err=%v", m.Subject(), e.err))
	if e.err != nil {
		t.Fatalf("job: %v", e.err)
	}
	v.check(t)
	if e.st.Splits == 0 {
		t.Errorf("splits = 0: the held batch was not given up on")
	}
}
