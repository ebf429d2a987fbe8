package broker_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/sink"
	"github.com/ferrylab/ferry/worker"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"
)

const (
	workerPW = "worker-pw-Zx81"
	coordPW  = "coord-pw-Qq42"
	adminPW  = "admin-pw-Lk07"
)

// fleetUsers is a broker with one user per role.
func fleetUsers() []broker.User {
	return []broker.User{
		{Name: "w", Password: workerPW, Role: broker.RoleWorker},
		{Name: "c", Password: coordPW, Role: broker.RoleCoordinator},
		{Name: "a", Password: adminPW, Role: broker.RoleAdmin},
	}
}

// client connects with ferry's own client options and collects the
// asynchronous errors (permission violations) the broker reports.
type client struct {
	*nats.Conn
	errs chan error
}

func dial(t *testing.T, url string, a natsconn.Auth) (*client, error) {
	t.Helper()
	opts, err := natsconn.Options(t.Name(), a, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{errs: make(chan error, 16)}
	opts = append(opts, nats.MaxReconnects(0), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case c.errs <- err:
		default:
		}
	}))
	c.Conn, err = nats.Connect(url, opts...)
	if err != nil {
		return nil, err
	}
	t.Cleanup(c.Close)
	return c, nil
}

func mustDial(t *testing.T, url string, a natsconn.Auth) *client {
	t.Helper()
	c, err := dial(t, url, a)
	if err != nil {
		t.Fatalf("connect as %q: %v", a.User, err)
	}
	return c
}

// violation waits for the broker's permissions violation naming subject.
func (c *client) violation(t *testing.T, subject string) {
	t.Helper()
	if err := c.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	select {
	case err := <-c.errs:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), subject) {
			t.Fatalf("async error = %v, want a permissions violation for %s", err, subject)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no permissions violation for %s", subject)
	}
}

func TestAuthRefusesAnonymousAndBadCredentials(t *testing.T) {
	b := natstest.NewBroker(t, broker.Options{Users: fleetUsers()})
	for _, tc := range []struct {
		name string
		auth natsconn.Auth
	}{
		{"anonymous", natsconn.Auth{}},
		{"wrong password", natsconn.Auth{User: "w", Password: coordPW}},
		{"unknown user", natsconn.Auth{User: "mallory", Password: workerPW}},
		{"token instead of user", natsconn.Auth{Token: workerPW}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dial(t, b.URL(), tc.auth)
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Fatalf("connect err = %v, want %v", err, nats.ErrAuthorization)
			}
		})
	}
	mustDial(t, b.URL(), natsconn.Auth{User: "w", Password: workerPW})
}

func TestWorkerUserCannotSendWork(t *testing.T) {
	b := natstest.NewBroker(t, broker.Options{Users: fleetUsers()})
	admin := mustDial(t, b.URL(), natsconn.Auth{User: "a", Password: adminPW})
	seen, err := admin.SubscribeSync(proto.WorkSubjectPrefix + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Flush(); err != nil {
		t.Fatal(err)
	}
	w := mustDial(t, b.URL(), natsconn.Auth{User: "w", Password: workerPW})

	subject := proto.WorkSubject("someworker")
	if err := w.Publish(subject, []byte("forged batch")); err != nil {
		t.Fatal(err)
	}
	w.violation(t, subject)
	// The forged batch went nowhere: the first work message the admin sees
	// is the coordinator's, sent after the violation came back.
	c := mustDial(t, b.URL(), natsconn.Auth{User: "c", Password: coordPW})
	if err := c.Publish(subject, []byte("real batch")); err != nil {
		t.Fatal(err)
	}
	m, err := seen.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(m.Data), "real batch"; got != want {
		t.Errorf("first work message = %q, want %q", got, want)
	}

	for _, tc := range []struct {
		name, subject string
		do            func(string) error
	}{
		{"publish any-worker queue", proto.WorkQueueSubject, func(s string) error { return w.Publish(s, nil) }},
		{"publish discovery", "$SRV.PING.ferry-worker", func(s string) error { return w.Publish(s, nil) }},
		{"publish elsewhere", "orders.new", func(s string) error { return w.Publish(s, nil) }},
		{"read replies", "_INBOX.>", func(s string) error { _, err := w.SubscribeSync(s); return err }},
		{"subscribe elsewhere", "orders.>", func(s string) error { _, err := w.SubscribeSync(s); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(tc.subject); err != nil {
				t.Fatal(err)
			}
			w.violation(t, tc.subject)
		})
	}
}

func TestCoordinatorUserCannotPoseAsWorker(t *testing.T) {
	b := natstest.NewBroker(t, broker.Options{Users: fleetUsers()})
	c := mustDial(t, b.URL(), natsconn.Auth{User: "c", Password: coordPW})
	for _, tc := range []struct {
		name, subject string
		do            func(string) error
	}{
		{"serve work", proto.WorkSubjectPrefix + ".>", func(s string) error { _, err := c.SubscribeSync(s); return err }},
		{"answer discovery", "$SRV.PING", func(s string) error { _, err := c.SubscribeSync(s); return err }},
		{"publish elsewhere", "orders.new", func(s string) error { return c.Publish(s, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(tc.subject); err != nil {
				t.Fatal(err)
			}
			c.violation(t, tc.subject)
		})
	}
}

func runJob(t *testing.T, cfg coordinator.Config, backend coordinator.Backend) *coordinator.Stats {
	t.Helper()
	src, err := corpus.Generated(corpus.GenConfig{Seed: 7, Docs: 600, Words: 40})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := coordinator.Run(ctx, cfg, src, backend, sink.Discard{})
	if err != nil {
		t.Fatalf("%s: %v", backend.Name(), err)
	}
	return st
}

// TestAuthorisedFleetCompletesJob runs a job on workers logged in as the
// worker user, sent by the coordinator user, and compares it with serial.
func TestAuthorisedFleetCompletesJob(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "worker.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(coordPW), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := []broker.User{
		{Name: "w", Password: workerPW, Role: broker.RoleWorker},
		{NKey: pub, Role: broker.RoleWorker},
		{Name: "c", Password: string(hash), Role: broker.RoleCoordinator}, // bcrypt, as in an auth file
	}
	b := natstest.NewBroker(t, broker.Options{Users: users})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	for i, a := range []natsconn.Auth{{User: "w", Password: workerPW}, {NKeySeed: seedFile}} {
		w, err := worker.New(worker.Config{URL: b.URL(), Auth: a, Name: fmt.Sprintf("w%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		go func() { done <- w.Run(ctx) }()
	}
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("worker: %v", err)
			}
		}
	})

	cfg := coordinator.Config{Workload: "embed", BatchSize: 25, Workers: 2, WorkerWait: 20 * time.Second}
	serial, err := coordinator.NewLocal(coordinator.ModeSerial, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	want := runJob(t, cfg, serial)

	c := mustDial(t, b.URL(), natsconn.Auth{User: "c", Password: coordPW})
	procs, err := coordinator.NewProcesses(c.Conn, cfg, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := runJob(t, cfg, procs)
	if got.Digest != want.Digest || got.Docs != want.Docs {
		t.Errorf("processes: %d docs digest %s; serial: %d docs digest %s", got.Docs, got.Digest, want.Docs, want.Digest)
	}
	if got.Workers != 2 {
		t.Errorf("workers = %d, want 2 (password and nkey worker)", got.Workers)
	}
	select {
	case err := <-c.errs:
		t.Errorf("coordinator saw %v", err)
	default:
	}
}

func TestTLS(t *testing.T) {
	certs := natstest.NewCerts(t)
	users := []broker.User{{Name: "c", Password: coordPW, Role: broker.RoleCoordinator}}
	tlsOnly := natstest.NewBroker(t, broker.Options{Users: users, TLS: broker.TLS{Cert: certs.ServerCert, Key: certs.ServerKey}})
	mutual := natstest.NewBroker(t, broker.Options{Users: users, TLS: broker.TLS{Cert: certs.ServerCert, Key: certs.ServerKey, ClientCA: certs.CA}})
	plainURL := func(b *broker.Broker) string { return strings.Replace(b.URL(), "tls://", "nats://", 1) }
	login := natsconn.Auth{User: "c", Password: coordPW}
	with := func(f func(*natsconn.Auth)) natsconn.Auth { a := login; f(&a); return a }

	for _, tc := range []struct {
		name  string
		url   string
		auth  natsconn.Auth
		wantE string // "" = connects with a verified TLS connection
	}{
		{"CA verifies the server", tlsOnly.URL(), with(func(a *natsconn.Auth) { a.TLSCA = certs.CA }), ""},
		{"nats:// URL upgrades to TLS", plainURL(tlsOnly), with(func(a *natsconn.Auth) { a.TLSCA = certs.CA }), ""},
		{"system roots do not trust the test CA", tlsOnly.URL(), login, "certificate"},
		{"wrong CA", tlsOnly.URL(), with(func(a *natsconn.Auth) { a.TLSCA = certs.OtherCA }), "certificate"},
		{"TLS but no password", tlsOnly.URL(), natsconn.Auth{TLSCA: certs.CA}, "authorization"},
		{"mutual TLS with client cert", mutual.URL(), with(func(a *natsconn.Auth) {
			a.TLSCA, a.TLSCert, a.TLSKey = certs.CA, certs.ClientCert, certs.ClientKey
		}), ""},
		{"mutual TLS without client cert", mutual.URL(), with(func(a *natsconn.Auth) { a.TLSCA = certs.CA }), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dial(t, tc.url, tc.auth)
			if tc.name == "mutual TLS without client cert" {
				// TLS 1.3 reports the missing certificate after the
				// handshake: the connection fails, one way or another.
				if err == nil {
					err = c.Flush()
				}
				if err == nil {
					t.Fatal("connected without a client certificate")
				}
				return
			}
			if tc.wantE != "" {
				if err == nil || !strings.Contains(strings.ToLower(err.Error()), tc.wantE) {
					t.Fatalf("connect err = %v, want one mentioning %q", err, tc.wantE)
				}
				return
			}
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			st, err := c.TLSConnectionState()
			if err != nil {
				t.Fatal(err)
			}
			if len(st.VerifiedChains) == 0 {
				t.Error("server certificate was not verified")
			}
		})
	}
	t.Run("unverified server is an x509 error", func(t *testing.T) {
		_, err := dial(t, tlsOnly.URL(), login)
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Errorf("err = %v (%T), want x509.UnknownAuthorityError", err, err)
		}
	})
}

func TestInvalidAuthConfig(t *testing.T) {
	certs := natstest.NewCerts(t)
	for _, tc := range []struct {
		name string
		o    broker.Options
		want string
	}{
		{"unknown role", broker.Options{Users: []broker.User{{Name: "x", Password: "p", Role: "root"}}}, `role "root"`},
		{"no role", broker.Options{Users: []broker.User{{Name: "x", Password: "p"}}}, `role ""`},
		{"no password", broker.Options{Users: []broker.User{{Name: "x", Role: broker.RoleWorker}}}, "no password"},
		{"no name", broker.Options{Users: []broker.User{{Password: "p", Role: broker.RoleWorker}}}, "needs a name"},
		{"seed instead of public nkey", broker.Options{Users: []broker.User{{NKey: "SUAMK2FG4MI6UE3ACF3FK3OIQBCEIEZV7NSWFFEW63UXMRLFM2XLAXK4GY", Role: broker.RoleWorker}}}, "not a public user nkey"},
		{"nkey and password", broker.Options{Users: []broker.User{{NKey: "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4", Password: "p", Role: broker.RoleWorker}}}, "not both"},
		{"duplicate", broker.Options{Users: []broker.User{{Name: "x", Password: "p", Role: broker.RoleWorker}, {Name: "x", Password: "q", Role: broker.RoleAdmin}}}, "twice"},
		{"cert without key", broker.Options{TLS: broker.TLS{Cert: certs.ServerCert}}, "both a certificate and a key"},
		{"client CA alone", broker.Options{TLS: broker.TLS{ClientCA: certs.CA}}, "needs the server's own certificate"},
		{"missing cert file", broker.Options{TLS: broker.TLS{Cert: "/nonexistent.pem", Key: certs.ServerKey}}, "nonexistent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := broker.Start(context.Background(), tc.o)
			if err == nil {
				b.Shutdown()
				t.Fatal("started")
			}
			if !errors.Is(err, broker.ErrAuthConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrAuthConfig mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), `"p"`) || strings.Contains(err.Error(), ": p ") {
				t.Errorf("error %q quotes the password", err)
			}
		})
	}
}

func TestLoadUsers(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, file, body string
		want             int    // users, when no error
		wantE            string // error substring
	}{
		{"yaml", "u.yaml", "users:\n  - user: w\n    password: " + workerPW + "\n    role: worker\n  - nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4\n    role: coordinator\n", 2, ""},
		{"json", "u.json", `{"users": [{"user": "c", "password": "x", "role": "coordinator"}]}`, 1, ""},
		{"misspelt key", "bad.yaml", "users:\n  - user: w\n    pasword: " + workerPW + "\n    role: worker\n", 0, "pasword"},
		{"bad role", "role.yaml", "users:\n  - {user: w, password: " + workerPW + ", role: boss}\n", 0, "user 1"},
		{"empty", "empty.yaml", "users: []\n", 0, "no users"},
		{"not yaml", "junk.yaml", "users: [\n", 0, "junk.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			users, err := broker.LoadUsers(write(tc.file, tc.body))
			if tc.wantE != "" {
				if !errors.Is(err, broker.ErrAuthConfig) || !strings.Contains(err.Error(), tc.wantE) {
					t.Fatalf("err = %v, want ErrAuthConfig mentioning %q", err, tc.wantE)
				}
				if strings.Contains(err.Error(), workerPW) || strings.Contains(err.Error(), "\n") {
					t.Errorf("error %q contains the password or spans lines", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := len(users); got != tc.want {
				t.Errorf("users = %d, want %d", got, tc.want)
			}
		})
	}
	if _, err := broker.LoadUsers(filepath.Join(dir, "missing.yaml")); !errors.Is(err, broker.ErrAuthConfig) {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestUserFormattingHidesPassword(t *testing.T) {
	o := broker.Options{Users: fleetUsers()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, o); strings.Contains(s, workerPW) || strings.Contains(s, adminPW) {
			t.Errorf("Sprintf(%q, options) = %s: shows a password", verb, s)
		}
	}
}
