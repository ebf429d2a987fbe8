package command

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylab/ferry/report"
)

// mockProc is a `ferry mockllm` child process.
type mockProc struct {
	cmd  *exec.Cmd
	url  string
	mu   sync.Mutex
	logs bytes.Buffer
	done chan error
}

func (m *mockProc) stderr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.logs.String()
}

// startMockLLM runs `ferry mockllm` on a free loopback port until the test
// ends and returns once it logs its address.
func startMockLLM(t *testing.T, env []string, args ...string) *mockProc {
	t.Helper()
	return startMockLLMArgs(t, env, append([]string{"mockllm", "--llm-listen", "127.0.0.1:0"}, args...)...)
}

func startMockLLMArgs(t *testing.T, env []string, args ...string) *mockProc {
	t.Helper()
	m := &mockProc{done: make(chan error, 1)}
	m.cmd = exec.Command(ferryBin, args...)
	m.cmd.Env = append(os.Environ(), env...)
	pipe, err := m.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			m.mu.Lock()
			m.logs.WriteString(line + "\n")
			m.mu.Unlock()
			if strings.Contains(line, "mockllm ready") {
				for _, f := range strings.Fields(line) {
					if u, ok := strings.CutPrefix(f, "url="); ok {
						urls <- u
					}
				}
			}
		}
		m.done <- m.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = m.cmd.Process.Kill()
		<-m.done
	})
	select {
	case m.url = <-urls:
	case <-time.After(30 * time.Second):
		t.Fatalf("mockllm did not log its address; stderr:\n%s", m.stderr())
	}
	return m
}

func TestMockLLMListenAlias(t *testing.T) {
	// The compose file runs `ferry mockllm --listen 0.0.0.0:8080`; the
	// broker's listen key in the environment must not move the mock.
	m := startMockLLMArgs(t, []string{"FERRY_LISTEN=127.0.0.1:1"}, "mockllm", "--listen", "127.0.0.1:0")
	res, err := http.Get(m.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("healthz = %d", res.StatusCode)
	}
}

func TestMockLLMServesAndStopsOnSignal(t *testing.T) {
	m := startMockLLM(t, []string{"FERRY_LLM_API_KEY=sk-mock-key"}, "--latency-p50", "1ms", "--reply-ratio", "1")
	post := func(key string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, m.url+"/v1/chat/completions",
			strings.NewReader(`{"messages":[{"role":"user","content":"one two three"}]}`))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := post("sk-mock-key"); code != 200 || !strings.Contains(body, `"content":"three two one"`) {
		t.Errorf("with key: %d %s", code, body)
	}
	if code, _ := post("sk-wrong"); code != 401 {
		t.Errorf("wrong key: %d, want 401", code)
	}
	if strings.Contains(m.stderr(), "sk-mock-key") {
		t.Errorf("the API key is in the log:\n%s", m.stderr())
	}
	_ = m.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-m.done:
		m.done <- err // for the cleanup
		if err != nil {
			t.Errorf("exit after SIGINT: %v\n%s", err, m.stderr())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("mockllm did not exit after SIGINT")
	}
	if !strings.Contains(m.stderr(), "mockllm stopped") {
		t.Errorf("stderr lacks the stop line:\n%s", m.stderr())
	}
}

// llmReport runs `ferry llm ... --format json` and decodes the report.
func llmReport(t *testing.T, env []string, args ...string) (*report.LLM, string, int) {
	t.Helper()
	out, stderr, code := ferry(t, env, append([]string{"llm", "--format", "json"}, args...)...)
	var r report.LLM
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("exit %d, report is not JSON: %v\nstdout: %s\nstderr: %s", code, err, out, stderr)
	}
	return &r, stderr, code
}

func TestLLMReport(t *testing.T) {
	r, stderr, code := llmReport(t, nil, "--docs", "300", "--concurrency", "100", "--latency-p50", "20ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if r.Schema != report.LLMSchema || r.Calls != 300 || r.OK != 300 || r.Errors != 0 || !r.Mock {
		t.Errorf("report = %+v", r)
	}
	if r.InFlight < 1 || r.InFlight > 100 {
		t.Errorf("inflight_peak = %d, want 1..100", r.InFlight)
	}
	// Every call waits at least the mock's 20 ms, so a serial loop would.
	if r.SerialS < 300*0.020 || r.P50ms < 20 {
		t.Errorf("serial_estimate_s = %.2f, p50 = %.1f ms; want >= 6 s and >= 20 ms", r.SerialS, r.P50ms)
	}
	if r.PromptTok == 0 || r.ReplyTok == 0 {
		t.Errorf("tokens = %d / %d", r.PromptTok, r.ReplyTok)
	}
}

func TestLLMAgainstMockProcessWithKey(t *testing.T) {
	m := startMockLLM(t, []string{"FERRY_LLM_API_KEY=sk-right-123"}, "--latency-p50", "5ms")
	r, stderr, code := llmReport(t, []string{"FERRY_LLM_API_KEY=sk-right-123"}, "--llm-url", m.url, "--docs", "50")
	if code != 0 || r.OK != 50 || r.Mock {
		t.Errorf("right key: exit %d, ok %d, in-process %v: %s", code, r.OK, r.Mock, stderr)
	}
	out, stderr, code := ferry(t, []string{"FERRY_LLM_API_KEY=sk-wrong-456"}, "llm", "--llm-url", m.url, "--docs", "50")
	if code != 1 || !strings.Contains(out, "http_401=50") {
		t.Errorf("wrong key: exit %d, stdout %s", code, out)
	}
	if strings.Contains(out+stderr, "sk-wrong-456") || strings.Contains(out+stderr, "sk-right-123") {
		t.Errorf("an API key leaked into the output:\n%s\n%s", out, stderr)
	}
}

func TestLLMBadInputIsCountedNotFatal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"choices": [{"message": {"content": `))
	}))
	t.Cleanup(garbage.Close)
	prompts := filepath.Join(t.TempDir(), "prompts.txt")
	var lines []string
	for i := range 20 {
		lines = append(lines, fmt.Sprintf("prompt %d about ferries", i))
	}
	lines[7] = strings.Repeat("long ", 200) // 1,000 bytes
	if err := os.WriteFile(prompts, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		args   []string
		kind   string
		failed int64
	}{
		{"500 storm", []string{"--error-rate", "1", "--llm-max-attempts", "2"}, "http_500", 20},
		{"connection refused", []string{"--llm-url", refused}, "refused", 20},
		{"garbage JSON", []string{"--llm-url", garbage.URL}, "bad_response", 20},
		{"prompt over the limit", []string{"--llm-max-prompt-bytes", "500"}, "prompt_too_large", 1},
		{"body over the mock's limit", []string{"--max-body-bytes", "600"}, "http_413", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--input", prompts, "--latency-p50", "1ms"}, tc.args...)
			r, stderr, code := llmReport(t, nil, args...)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if r.Calls != 20 || r.Errors != tc.failed || r.ErrorKinds[tc.kind] != tc.failed || r.OK != 20-tc.failed {
				t.Errorf("calls %d ok %d errors %d by kind %v; want %d %s", r.Calls, r.OK, r.Errors, r.ErrorKinds, tc.failed, tc.kind)
			}
			if r.FirstError == "" {
				t.Error("no first error in the report")
			}
			summary := fmt.Sprintf("some calls failed: %d of 20 (%s=%d)", tc.failed, tc.kind, tc.failed)
			if !strings.Contains(stderr, summary) || strings.Count(strings.TrimSpace(stderr), "\n") > 1 {
				t.Errorf("stderr = %q, want the log line and one line saying %q", stderr, summary)
			}
		})
	}
}

func TestLLMInvalidConfigExitsTwo(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		key  string
	}{
		{"zero concurrency", []string{"llm", "--concurrency", "0"}, "concurrency=0"},
		{"error rate over 1", []string{"llm", "--error-rate", "2"}, "error_rate=2"},
		{"not http", []string{"llm", "--llm-url", "ftp://example.com"}, "llm_url=ftp://example.com"},
		{"negative latency", []string{"mockllm", "--latency-p50", "-1s"}, "latency_p50=-1s"},
		{"bad listen", []string{"mockllm", "--llm-listen", "nonsense"}, "llm_listen=nonsense"},
		{"pipeline out not jsonl", []string{"pipeline", "--out", "x.npy"}, "out=x.npy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := ferry(t, nil, tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.key) {
				t.Errorf("exit %d, stderr %q; want 2 naming %q", code, stderr, tc.key)
			}
		})
	}
}

// TestInterruptEndsWithReport checks Ctrl-C during calls that would take
// an hour: the run ends promptly, prints its report and exits 130.
func TestInterruptEndsWithReport(t *testing.T) {
	for _, args := range [][]string{
		{"llm", "--docs", "50"},
		{"pipeline", "-q", "--docs", "50", "--modes", "goroutines"},
	} {
		t.Run(args[0], func(t *testing.T) {
			cmd := exec.Command(ferryBin, append(args, "--latency-p50", "1h", "--llm-timeout", "2h")...)
			var stdout bytes.Buffer
			cmd.Stdout = &stdout
			pipe, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			sc := bufio.NewScanner(pipe)
			var stderr strings.Builder
			for sc.Scan() { // the endpoint is up once it is logged
				stderr.WriteString(sc.Text() + "\n")
				if strings.Contains(sc.Text(), "llm endpoint") {
					break
				}
			}
			_ = cmd.Process.Signal(syscall.SIGINT)
			done := make(chan error, 1)
			go func() {
				for sc.Scan() {
					stderr.WriteString(sc.Text() + "\n")
				}
				done <- cmd.Wait()
			}()
			select {
			case err := <-done:
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 130 {
					t.Errorf("exit = %v, want 130; stderr:\n%s", err, stderr.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatal("no exit 30 s after SIGINT")
			}
			if !strings.Contains(stderr.String(), "interrupted") || !strings.Contains(stdout.String(), "endpoint:") {
				t.Errorf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			}
		})
	}
}
