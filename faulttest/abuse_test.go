package faulttest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/internal/poison"
	"github.com/ferrylab/ferry/internal/poll"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/workload"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// The abuse suite: clients that answer batches they were not sent. Each
// test runs a job with one poisoned document through real worker processes
// while the abuser works, and asserts that the job ends within its bound,
// that every other document's output is a serial run's (the ledger
// recomputes spin's output), and that the poisoned document is reported by
// its index.

// abuseBound is how long a job under abuse may take before the test fails.
const abuseBound = 2 * time.Minute

// abusePassword is every login's password in these tests.
const abusePassword = "abuse-pw-5Tq9"

// users makes a broker user of each name, its role read from the name's
// first letter: w worker, c coordinator.
func users(names ...string) []broker.User {
	var us []broker.User
	for _, n := range names {
		role := broker.RoleWorker
		if n[0] == 'c' {
			role = broker.RoleCoordinator
		}
		us = append(us, broker.User{Name: n, Password: abusePassword, Role: role})
	}
	return us
}

func loginEnv(name string) []string {
	return []string{"FERRY_NATS_USER=" + name, "FERRY_NATS_PASSWORD=" + abusePassword}
}

// abuser is a client logged in as one user, recording the permission
// violations the broker reports to it.
type abuser struct {
	*nats.Conn
	mu         sync.Mutex
	violations []string
}

func dialAs(t testing.TB, url, name string) *abuser {
	t.Helper()
	a := &abuser{}
	var auth natsconn.Auth
	if name != "" {
		auth = natsconn.Auth{User: name, Password: abusePassword}
	}
	nc, err := natsconn.Connect(url, "abuser-"+name, auth, nil, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			a.mu.Lock()
			a.violations = append(a.violations, err.Error())
			a.mu.Unlock()
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	a.Conn = nc
	return a
}

func (a *abuser) refused(subject string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.ContainsFunc(a.violations, func(v string) bool { return strings.Contains(v, `"`+subject+`"`) })
}

// poisoned is a spin job over n documents, one of which (bad) panics the
// workload.
func poisoned(n, bad int) (coordinator.Config, []string) {
	d := docs(n)
	cfg := job(10, 50*time.Microsecond)
	cfg.Workload, cfg.Params.Args = poison.Name, poison.Args(d[bad], cfg.Workload)
	cfg.BatchTimeout = 2 * time.Second
	cfg.WorkerWait = 20 * time.Second
	return cfg, d
}

// runAbused runs cfg over d on nc's processes backend within abuseBound,
// checks its account and returns its stats.
func runAbused(t *testing.T, name string, nc *nats.Conn, cfg coordinator.Config, workers int, d []string, bad int) *coordinator.Stats {
	t.Helper()
	l := newLedger(t, d, cfg.Params)
	ctx, cancel := context.WithTimeout(context.Background(), abuseBound)
	defer cancel()
	st, err := run(ctx, t, nc, cfg, workers, &source{docs: d}, l, nil)
	checkAbused(t, name, l, st, err, bad)
	return st
}

// checkAbused asserts the account of a job run under abuse.
func checkAbused(t *testing.T, name string, l *ledger, st *coordinator.Stats, err error, bad int) {
	t.Helper()
	if !errors.Is(err, coordinator.ErrDocsFailed) {
		t.Fatalf("%s: job ended with %v, want only the poisoned document failed", name, err)
	}
	v := l.verdict(bad)
	summary(t, name, v, st, fmt.Sprintf("forged_discarded=%d", st.Forged))
	v.check(t, bad)
	if got := slices.Collect(func(yield func(int64) bool) {
		for _, f := range st.Failed {
			yield(f.Index)
		}
	}); !slices.Equal(got, []int64{int64(bad)}) {
		t.Errorf("%s: failures reported at %v, want [%d]", name, got, bad)
	}
}

// TestForgedRepliesOnReplySubject: on a broker without auth, a client that
// reads the replies (not the batches) answers every reply subject it sees
// again at once with a header-only 400 and a result of the right shape for
// the next batch IDs. Without the token, its answers failed or replaced
// good results; with it, they are dropped and counted.
func TestForgedRepliesOnReplySubject(t *testing.T) {
	r := rng(t)
	n, workers := 2_000, 2
	bad := r.IntN(n)
	cfg, d := poisoned(n, bad)
	b := natstest.NewBroker(t, broker.Options{})
	pool(t, b.URL(), workers, false)
	forger := dialAs(t, b.URL(), "")
	codec, _ := proto.NewCodec(proto.CodecPacked, proto.Limits{})
	var forged atomic.Int64
	sub, err := forger.Subscribe("_INBOX.>", func(m *nats.Msg) {
		if m.Header.Get(proto.HeaderStagesNs) == "" {
			return // not a worker's reply (ours, or discovery)
		}
		var got proto.Result
		if codec.DecodeResult(m.Data, &got) != nil {
			return
		}
		fail := nats.NewMsg(m.Subject)
		fail.Header.Set(micro.ErrorCodeHeader, "400")
		fail.Header.Set(micro.ErrorHeader, "forged failure")
		_ = forger.PublishMsg(fail)
		for next := range uint64(4) {
			fake := got
			fake.BatchID, fake.Attempt = got.BatchID+1+next, 1
			fake.Out.Data = make([]byte, len(got.Out.Data)) // zeros: not spin's output
			data, _ := codec.AppendResult(nil, &fake)
			_ = forger.Publish(m.Subject, data)
		}
		forged.Add(5)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := forger.Flush(); err != nil {
		t.Fatal(err)
	}
	st := runAbused(t, "forged-replies", connect(t, b.URL(), "ferry-coordinator"), cfg, workers, d, bad)
	if forged.Load() == 0 || st.Forged == 0 {
		t.Errorf("forgeries sent %d, discarded %d: the test forged nothing", forged.Load(), st.Forged)
	}
}

// TestWorkerLoginAnswersAnotherWorkersBatches: a stolen worker login (w3)
// tries to read the batches of the fleet's workers (logins w1, w2) and
// answer them first with results of the right shape and the batch's own
// token. The broker refuses its subscriptions, so it answers nothing.
func TestWorkerLoginAnswersAnotherWorkersBatches(t *testing.T) {
	r := rng(t)
	n := 2_000
	bad := r.IntN(n)
	cfg, d := poisoned(n, bad)
	b := natstest.NewBroker(t, broker.Options{Users: users("w1", "w2", "w3", "c1")})
	pool(t, b.URL(), 1, false, loginEnv("w1")...)
	pool(t, b.URL(), 1, false, loginEnv("w2")...)
	rogue := dialAs(t, b.URL(), "w3")
	codec, _ := proto.NewCodec(proto.CodecPacked, proto.Limits{})
	var answered atomic.Int64
	answer := func(m *nats.Msg) {
		var batch proto.Batch
		if codec.DecodeBatch(m.Data, &batch) != nil {
			return
		}
		res := proto.Result{BatchID: batch.ID, Attempt: batch.Attempt, Token: batch.Token,
			Out: workload.Output{Stride: 16, Data: make([]byte, 16*len(batch.Docs))}}
		data, _ := codec.AppendResult(nil, &res)
		if m.Respond(data) == nil {
			answered.Add(1)
		}
	}
	targets := []string{proto.WorkSubjectPrefix + ".>", proto.WorkSubject("w1") + ".>", proto.WorkSubject("w2") + ".>"}
	for _, s := range targets {
		if _, err := rogue.Subscribe(s, answer); err != nil {
			t.Fatal(err)
		}
	}
	if err := rogue.Flush(); err != nil {
		t.Fatal(err)
	}
	runAbused(t, "other-login", dialAs(t, b.URL(), "c1").Conn, cfg, 2, d, bad)
	for _, s := range targets {
		if !poll.Until(10*time.Second, func() bool { return rogue.refused(s) }) {
			t.Errorf("the broker did not refuse w3's subscription to %s", s)
		}
	}
	if got := answered.Load(); got != 0 {
		t.Errorf("w3 answered %d batches", got)
	}
}

// TestHeaderOnlyFerryErrorForgery: with dispatch=jetstream, a stolen worker
// login publishes header-only give-up results (Ferry-Error) for every range
// of a job: before the job starts, where a resume would find them, and
// during it, ahead of the batches. None fails a document: the coordinator
// takes no stored give-up on trust and no live result without its batch's
// token.
func TestHeaderOnlyFerryErrorForgery(t *testing.T) {
	r := rng(t)
	n := 2_000
	bad := r.IntN(n)
	cfg, d := poisoned(n, bad)
	const jobID = "forged-errors"
	b := natstest.NewBroker(t, broker.Options{Users: users("w1", "w2", "w3", "c1"), JetStream: true, StoreDir: t.TempDir()})
	poolWith(t, b.URL(), 1, false, []string{"--dispatch", "jetstream"}, loginEnv("w1")...)
	poolWith(t, b.URL(), 1, false, []string{"--dispatch", "jetstream"}, loginEnv("w2")...)
	rogue := dialAs(t, b.URL(), "w3")
	js, err := jetstream.New(rogue.Conn)
	if err != nil {
		t.Fatal(err)
	}
	// forge publishes a give-up for every range a batch from first on can
	// be split into (halves, down to single documents) and returns how many.
	forge := func(from int) int {
		var subjects []string
		var tree func(first, n int)
		tree = func(first, n int) {
			subjects = append(subjects, proto.ResultSubject(jobID, int64(first), n))
			if n > 1 {
				tree(first, n/2)
				tree(first+n/2, n-n/2)
			}
		}
		for first := from; first < n; first += cfg.BatchSize {
			tree(first, min(cfg.BatchSize, n-first))
		}
		for _, subj := range subjects {
			msg := nats.NewMsg(subj)
			msg.Header.Set(proto.HeaderError, "400 forged: the batch is bad")
			if _, err := js.PublishMsgAsync(msg); err != nil {
				t.Errorf("forge %s: %v", subj, err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			t.Errorf("the results stream did not store %d forgeries within a minute", len(subjects))
		}
		return len(subjects)
	}
	nc := dialAs(t, b.URL(), "c1")
	be, err := coordinator.NewJetStream(nc.Conn, cfg, jobID, nil)
	if err != nil {
		t.Fatal(err)
	}
	var seen atomic.Int64
	cfg.Observe = func(e coordinator.Event) {
		if e.Kind == coordinator.EventForged {
			seen.Add(1)
		}
	}
	l := newLedger(t, d, cfg.Params)
	during := n / 2 / cfg.BatchSize * cfg.BatchSize
	var live int
	src := &source{docs: d, at: func(i int) {
		if i == during {
			live = forge(during)
			// Hold the input until the coordinator has seen them.
			if !poll.Until(30*time.Second, func() bool { return seen.Load() >= int64(live) }) {
				t.Errorf("the coordinator saw %d of %d live forgeries", seen.Load(), live)
			}
		}
	}}
	// Give-ups stored before the job, as if a crashed run had left them.
	if err := ensureResultStream(t, nc.Conn); err != nil {
		t.Fatal(err)
	}
	before := forge(0)
	ctx, cancel := context.WithTimeout(context.Background(), abuseBound)
	defer cancel()
	st, err := coordinator.Run(ctx, cfg, src, be, l)
	checkAbused(t, "forged-errors", l, st, err, bad)
	t.Logf("forged %d give-ups before the job and %d during it", before, live)
	if st.Forged < int64(live) {
		t.Errorf("forged_discarded = %d, want at least the %d live forgeries", st.Forged, live)
	}
}

// ensureResultStream creates the results stream as a coordinator would, so
// forgeries can be stored before the job starts.
func ensureResultStream(t testing.TB, nc *nats.Conn) error {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: proto.ResultStream, Subjects: []string{proto.ResultSubjectPrefix + ".>"},
		MaxMsgsPerSubject: 1, Duplicates: 2 * time.Minute, AllowDirect: true, MaxAge: 24 * time.Hour,
	})
	return err
}

// TestTwoJobsOneFleet: two coordinators (logins c1, c2) run a job each at
// once on one fleet. Neither can read the other's replies, and both jobs
// come out as serial runs would.
func TestTwoJobsOneFleet(t *testing.T) {
	r := rng(t)
	n, workers := 2_000, 2
	b := natstest.NewBroker(t, broker.Options{Users: users("w1", "w2", "c1", "c2")})
	pool(t, b.URL(), 1, false, loginEnv("w1")...)
	pool(t, b.URL(), 1, false, loginEnv("w2")...)
	type job struct {
		login string
		bad   int
		cfg   coordinator.Config
		d     []string
		l     *ledger
		nc    *abuser
		st    *coordinator.Stats
		err   error
	}
	jobs := []*job{{login: "c1"}, {login: "c2"}}
	for i, j := range jobs {
		j.bad = r.IntN(n)
		j.cfg, j.d = poisoned(n, j.bad)
		j.cfg.Params.OutBytes = 16 + 8*i // the jobs' outputs differ
		j.l = newLedger(t, j.d, j.cfg.Params)
		j.nc = dialAs(t, b.URL(), j.login)
	}
	// Each coordinator tries to read the other's replies, and every inbox.
	for i, j := range jobs {
		other := jobs[1-i].login
		for _, s := range []string{proto.InboxPrefix(other) + ".>", "_INBOX.>"} {
			if _, err := j.nc.SubscribeSync(s); err != nil {
				t.Fatal(err)
			}
			if !poll.Until(10*time.Second, func() bool { return j.nc.refused(s) }) {
				t.Errorf("%s may read %s", j.login, s)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), abuseBound)
	defer cancel()
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Go(func() { j.st, j.err = run(ctx, t, j.nc.Conn, j.cfg, workers, &source{docs: j.d}, j.l, nil) })
	}
	wg.Wait()
	for _, j := range jobs {
		checkAbused(t, "two-jobs-"+j.login, j.l, j.st, j.err, j.bad)
		if j.st.Forged != 0 {
			t.Errorf("%s: forged_discarded = %d: a job took the other's replies for forgeries", j.login, j.st.Forged)
		}
	}
}
