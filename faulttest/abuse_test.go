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
	"github.com/ferrylab/ferry/internal/poll"
	"github.com/ferrylab/ferry/proto"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
	cfg.Params.PanicOn = d[bad]
	cfg.BatchTimeout = 2 * time.Second
	cfg.WorkerWait = 20 * time.Second
	return cfg, d
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
