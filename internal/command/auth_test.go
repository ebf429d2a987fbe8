package command

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/internal/poll"
	"github.com/ferrylab/ferry/report"
	"github.com/nats-io/nats.go"
)

// safeBuffer collects a child's output while the test reads it.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ferryProc is a long-running ferry process (broker, worker) owned by a test.
type ferryProc struct {
	cmd  *exec.Cmd
	out  *safeBuffer
	done chan struct{}
}

// spawnFerry starts ferry in the background; t.Cleanup stops and reaps it.
func spawnFerry(t *testing.T, env []string, args ...string) *ferryProc {
	t.Helper()
	p := &ferryProc{cmd: exec.Command(ferryBin, args...), out: &safeBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	return p
}

// stop sends SIGTERM, waits up to 15s, then kills; it returns the output.
func (p *ferryProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

var readyURL = regexp.MustCompile(`msg="broker ready" url=(\S+)`)

// spawnBroker starts `ferry broker` on a random loopback port and returns
// it with its client URL, read from its "broker ready" log line.
func spawnBroker(t *testing.T, env []string, args ...string) (*ferryProc, string) {
	t.Helper()
	b := spawnFerry(t, env, append([]string{"broker", "--listen", "127.0.0.1:0", "--http-port", "0"}, args...)...)
	var url string
	poll.WaitFor(t, 20*time.Second, "broker ready", func() bool {
		if m := readyURL.FindStringSubmatch(b.out.String()); m != nil {
			url = m[1]
		}
		return url != ""
	})
	return b, url
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
}

func environ(pid int) []string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	return strings.Split(string(b), "\x00")
}

func parseReport(t *testing.T, out string) report.Report {
	t.Helper()
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out)
	}
	return r
}

// TestAuthenticatedFleet runs broker, worker and coordinator as separate
// processes with passwords on: the fleet computes what serial computes,
// anonymous and wrong logins are refused, a worker login cannot run a job,
// and no password appears in any output, report or argv.
func TestAuthenticatedFleet(t *testing.T) {
	wpw, cpw := "wpw-"+rand.Text(), "cpw-"+rand.Text()
	secrets := []string{wpw, cpw}
	b, url := spawnBroker(t, []string{"FERRY_WORKER_PASSWORD=" + wpw, "FERRY_COORDINATOR_PASSWORD=" + cpw}, "--log-level", "debug")
	w := spawnFerry(t, []string{"FERRY_NATS_URL=" + url, "FERRY_NATS_USER=worker", "FERRY_NATS_PASSWORD=" + wpw},
		"worker", "--procs", "2", "--log-level", "debug")
	var kids []int
	poll.WaitFor(t, 20*time.Second, "two worker processes", func() bool { kids = children(w.cmd.Process.Pid); return len(kids) == 2 })
	for _, k := range kids {
		if c := cmdline(k); strings.Contains(c, wpw) || strings.Contains(c, url) {
			t.Errorf("worker child argv %q shows the password or URL", c)
		}
	}

	var outputs []string
	coord := func(env []string, args ...string) (string, string, int) {
		out, stderr, code := ferry(t, env, append([]string{"coordinator", "--log-level", "debug"}, args...)...)
		outputs = append(outputs, out, stderr)
		return out, stderr, code
	}
	login := []string{"FERRY_NATS_URL=" + url, "FERRY_NATS_USER=coordinator", "FERRY_NATS_PASSWORD=" + cpw}

	t.Run("authorised fleet completes the job", func(t *testing.T) {
		out, stderr, code := coord(login, "--expect-workers", "2", "--modes", "serial,processes", "--docs", "600", "--batch-size", "25", "--format", "json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		r := parseReport(t, out)
		if !r.IdenticalResults || len(r.Modes) != 2 || r.Modes[1].Docs != 600 || r.Modes[1].Workers != 2 {
			t.Errorf("report: identical=%v modes=%+v", r.IdenticalResults, r.Modes)
		}
		// The floor's echo logs in as the coordinator and answers on its
		// own echo subject: an authenticated fleet has a floor too.
		if len(r.Floor) == 0 || r.Floor[0].RawP50us <= 0 || r.Floor[0].FerryP50 <= 0 {
			t.Errorf("transport floor %+v, want a raw echo and a ferry round trip; stderr: %s", r.Floor, stderr)
		}
		if strings.Contains(stderr, "no transport floor") || strings.Contains(stderr, "transport floor not measured") {
			t.Errorf("stderr says the floor was not measured: %s", stderr)
		}
	})
	t.Run("password in the URL is redacted in the report", func(t *testing.T) {
		u := strings.Replace(url, "nats://", "nats://coordinator:"+cpw+"@", 1)
		out, stderr, code := coord(nil, "--nats-url", u, "--expect-workers", "2", "--docs", "100", "--format", "json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if got := parseReport(t, out).Config["nats_url"]; !strings.Contains(got.(string), "***@") {
			t.Errorf("report nats_url = %v, want the password redacted", got)
		}
	})
	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"anonymous is refused", []string{"FERRY_NATS_URL=" + url}},
		{"wrong password is refused", []string{"FERRY_NATS_URL=" + url, "FERRY_NATS_USER=coordinator", "FERRY_NATS_PASSWORD=" + wpw}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := coord(tc.env, "--docs", "10")
			if code != 2 || !strings.Contains(stderr, "nats_url=") || !strings.Contains(stderr, "uthorization") {
				t.Errorf("exit %d, stderr %q; want exit 2 naming nats_url and the authorization violation", code, stderr)
			}
		})
	}
	t.Run("worker login cannot run a job", func(t *testing.T) {
		env := []string{"FERRY_NATS_URL=" + url, "FERRY_NATS_USER=worker", "FERRY_NATS_PASSWORD=" + wpw}
		_, stderr, code := coord(env, "--docs", "10", "--expect-workers", "1")
		if code != 2 || !strings.Contains(stderr, "Permissions Violation") || !strings.Contains(stderr, "nats_user") {
			t.Errorf("exit %d, stderr %q; want exit 2 naming nats_user and the permissions violation", code, stderr)
		}
	})

	w.stop()
	b.stop()
	outputs = append(outputs, w.out.String(), b.out.String())
	if !strings.Contains(b.out.String(), "worker (worker), coordinator (coordinator)") {
		t.Errorf("broker log does not list its users:\n%s", b.out.String())
	}
	for i, o := range outputs {
		for _, s := range secrets {
			if strings.Contains(o, s) {
				t.Errorf("output %d shows a password:\n%s", i, o)
			}
		}
	}
}

// TestRunUsesThrowawayCredentials checks that `ferry run` gives its
// workers a password through the environment, not argv, and that its
// embedded broker refuses anonymous clients.
func TestRunUsesThrowawayCredentials(t *testing.T) {
	cmd := exec.Command(ferryBin, "run", "-q", "--modes", "processes", "--workers", "1", "--docs", "100000000")
	var out safeBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var kid int
	poll.WaitFor(t, 20*time.Second, "a worker process", func() bool {
		k := children(cmd.Process.Pid)
		if len(k) > 0 {
			kid = k[0]
		}
		return kid != 0
	})
	var user, password, url string
	poll.WaitFor(t, 10*time.Second, "the worker's environment", func() bool {
		for _, kv := range environ(kid) {
			if v, ok := strings.CutPrefix(kv, "FERRY_NATS_USER="); ok {
				user = v
			}
			if v, ok := strings.CutPrefix(kv, "FERRY_NATS_PASSWORD="); ok {
				password = v
			}
			if v, ok := strings.CutPrefix(kv, "FERRY_NATS_URL="); ok {
				url = v
			}
		}
		return password != "" && url != ""
	})
	if len(password) < 20 {
		t.Errorf("generated password %q is short", password)
	}
	if c := cmdline(kid); strings.Contains(c, password) {
		t.Errorf("worker argv %q shows the password", c)
	}
	if _, err := nats.Connect(url, nats.MaxReconnects(0)); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("anonymous connect to ferry run's broker: err = %v, want %v", err, nats.ErrAuthorization)
	}
	nc, err := nats.Connect(url, nats.UserInfo(user, password), nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("worker login: %v", err)
	}
	nc.Close()
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	if strings.Contains(out.String(), password) {
		t.Errorf("ferry run output shows the password:\n%s", out.String())
	}
}

// TestTLSFleet runs a fleet over mutual TLS with certificates made here.
func TestTLSFleet(t *testing.T) {
	certs := natstest.NewCerts(t)
	wpw, cpw := rand.Text(), rand.Text()
	_, url := spawnBroker(t, []string{"FERRY_WORKER_PASSWORD=" + wpw, "FERRY_COORDINATOR_PASSWORD=" + cpw},
		"--tls-cert", certs.ServerCert, "--tls-key", certs.ServerKey, "--tls-client-ca", certs.CA)
	if !strings.HasPrefix(url, "tls://") {
		t.Fatalf("broker URL %q is not tls://", url)
	}
	tlsEnv := func(user, pw string, extra ...string) []string {
		return append([]string{"FERRY_NATS_URL=" + url, "FERRY_NATS_USER=" + user, "FERRY_NATS_PASSWORD=" + pw,
			"FERRY_NATS_TLS_CA=" + certs.CA, "FERRY_NATS_TLS_CERT=" + certs.ClientCert, "FERRY_NATS_TLS_KEY=" + certs.ClientKey}, extra...)
	}
	spawnFerry(t, tlsEnv("worker", wpw), "worker")
	out, stderr, code := ferry(t, tlsEnv("coordinator", cpw), "coordinator", "--expect-workers", "1", "--modes", "serial,processes", "--docs", "300", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if r := parseReport(t, out); !r.IdenticalResults || r.Modes[1].Docs != 300 {
		t.Errorf("report: identical=%v modes=%+v", r.IdenticalResults, r.Modes)
	}
	for _, tc := range []struct {
		name, unset, want string
	}{
		{"no CA: the server is not trusted", "FERRY_NATS_TLS_CA=", "certificate"},
		{"no client certificate", "FERRY_NATS_TLS_CERT=", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := tlsEnv("coordinator", cpw, tc.unset)
			if tc.unset == "FERRY_NATS_TLS_CERT=" {
				env = append(env, "FERRY_NATS_TLS_KEY=")
			}
			_, stderr, code := ferry(t, env, "coordinator", "--docs", "10", "--worker-wait", "1s")
			if code == 0 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want a failure mentioning %q", code, stderr, tc.want)
			}
		})
	}
}

func TestBrokerConfigErrors(t *testing.T) {
	certs := natstest.NewCerts(t)
	badFile := filepath.Join(t.TempDir(), "users.yaml")
	os.WriteFile(badFile, []byte("users:\n  - {user: w, password: hunter2hunter2, role: root}\n"), 0o600)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		key  string
	}{
		{"anonymous beyond loopback", nil, []string{"--listen", "0.0.0.0:0"}, "listen=0.0.0.0:0"},
		{"cert without key", nil, []string{"--tls-cert", certs.ServerCert}, "tls_key="},
		{"missing cert", nil, []string{"--tls-cert", "/nonexistent.pem", "--tls-key", certs.ServerKey}, "tls_cert=/nonexistent.pem"},
		{"bad role in auth file", nil, []string{"--auth-file", badFile}, "auth_file="},
		{"empty worker user", []string{"FERRY_WORKER_PASSWORD=x1234567"}, []string{"--worker-user", ""}, "worker_user="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, ferryBin, append([]string{"broker", "--http-port", "0", "--listen", "127.0.0.1:0"}, tc.args...)...)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.key) {
				t.Errorf("err %v, output %q; want exit 2 naming %q", err, out, tc.key)
			}
			if strings.Contains(string(out), "hunter2") {
				t.Errorf("output %q shows the password", out)
			}
		})
	}
	t.Run("allow_anonymous lets it start", func(t *testing.T) {
		b := spawnFerry(t, nil, "broker", "--listen", "0.0.0.0:0", "--http-port", "0", "--allow-anonymous")
		poll.WaitFor(t, 20*time.Second, "broker ready", func() bool { return strings.Contains(b.out.String(), "broker ready") })
	})
}
