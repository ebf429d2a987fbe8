package llm

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fastRetry keeps retry tests quick without changing what they exercise.
func fastRetry(url string) ClientConfig {
	return ClientConfig{URL: url, MaxAttempts: 3, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Timeout: 10 * time.Second}
}

func newClient(tb testing.TB, cfg ClientConfig) *Client {
	tb.Helper()
	c, err := NewClient(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// scripted serves the given statuses in turn (with headers and body), then
// hands every later request to next.
func scripted(tb testing.TB, next http.Handler, steps ...func(http.ResponseWriter)) (string, *atomic.Int64) {
	tb.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1) - 1
		if int(i) < len(steps) {
			steps[i](w)
			return
		}
		next.ServeHTTP(w, r)
	}))
	tb.Cleanup(srv.Close)
	return srv.URL, &n
}

func status(code int, hdr ...string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		writeError(w, code, "test", "test", "scripted")
	}
}

func TestCompleteOK(t *testing.T) {
	m, url := newMockServer(t, MockConfig{APIKey: "sk-ok"})
	cfg := fastRetry(url)
	cfg.APIKey = "sk-ok"
	prompt := "one two three four five six seven eight"
	comp, err := newClient(t, cfg).Complete(t.Context(), prompt)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := comp.Text, m.Reply(prompt); got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
	if got, want := [3]int{comp.PromptTokens, comp.CompletionTokens, comp.Attempts}, [3]int{8, 2, 1}; got != want {
		t.Errorf("prompt, completion tokens, attempts = %v, want %v", got, want)
	}
}

func TestCompleteRetries(t *testing.T) {
	m, _ := newMockServer(t, MockConfig{})
	tests := []struct {
		name     string
		steps    []func(http.ResponseWriter)
		attempts int
		wantErr  bool
	}{
		{name: "429 with retry-after", steps: []func(http.ResponseWriter){status(429, "Retry-After", "1", "Retry-After-Ms", "5")}, attempts: 2},
		{name: "503", steps: []func(http.ResponseWriter){status(503)}, attempts: 2},
		{name: "408", steps: []func(http.ResponseWriter){status(408)}, attempts: 2},
		{name: "500 then 502", steps: []func(http.ResponseWriter){status(500), status(502)}, attempts: 3},
		{name: "500 storm", steps: []func(http.ResponseWriter){status(500), status(500), status(500), status(500)}, attempts: 3, wantErr: true},
		{name: "400 not retried", steps: []func(http.ResponseWriter){status(400)}, attempts: 1, wantErr: true},
		{name: "401 not retried", steps: []func(http.ResponseWriter){status(401)}, attempts: 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, hits := scripted(t, m, tt.steps...)
			comp, err := newClient(t, fastRetry(url)).Complete(t.Context(), "a b c")
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got, want := comp.Attempts, tt.attempts; got != want {
				t.Errorf("Attempts = %d, want %d", got, want)
			}
			if got, want := hits.Load(), int64(tt.attempts); got != want {
				t.Errorf("server saw %d requests, want %d", got, want)
			}
			if tt.wantErr {
				if _, ok := errors.AsType[*StatusError](err); !ok {
					t.Errorf("err = %v, want a *StatusError in the chain", err)
				}
			}
		})
	}
}

func TestCompleteMockErrorRate(t *testing.T) {
	m, url := newMockServer(t, MockConfig{ErrorRate: 1})
	comp, err := newClient(t, fastRetry(url)).Complete(t.Context(), "x")
	se, ok := errors.AsType[*StatusError](err)
	if !ok || se.Code != 500 {
		t.Fatalf("err = %v, want StatusError 500", err)
	}
	if got, want := comp.Attempts, 3; got != want {
		t.Errorf("Attempts = %d, want %d", got, want)
	}
	if got, want := m.Stats().Failed, int64(3); got != want {
		t.Errorf("mock Failed = %d, want %d", got, want)
	}
}

func TestCompleteBadResponse(t *testing.T) {
	tests := []struct{ name, body string }{
		{name: "garbage", body: "<html>proxy error</html>"},
		{name: "truncated", body: `{"choices":[{"message":{"content":"hi`},
		{name: "no choices", body: `{"choices":[]}`},
		{name: "too large", body: `{"choices":[{"message":{"content":"` + strings.Repeat("x", 2000) + `"}}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, hits := scripted(t, nil, func(w http.ResponseWriter) { _, _ = w.Write([]byte(tt.body)) })
			cfg := fastRetry(url)
			cfg.MaxResponseBytes = 1024
			_, err := newClient(t, cfg).Complete(t.Context(), "x")
			if !errors.Is(err, ErrBadResponse) {
				t.Errorf("err = %v, want ErrBadResponse", err)
			}
			if got, want := hits.Load(), int64(1); got != want {
				t.Errorf("server saw %d requests, want %d (bad bodies are not retried)", got, want)
			}
		})
	}
}

func TestCompleteConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	comp, err := newClient(t, fastRetry("http://"+addr)).Complete(ctx, "x")
	if err == nil || ctx.Err() != nil {
		t.Fatalf("err = %v, ctx err = %v: want a connection error before the guard deadline", err, ctx.Err())
	}
	if got, want := comp.Attempts, 3; got != want {
		t.Errorf("Attempts = %d, want %d (refused connections are retried)", got, want)
	}
}

func TestCompleteTooLarge(t *testing.T) {
	_, url := newMockServer(t, MockConfig{MaxBodyBytes: 512})
	t.Run("client limit", func(t *testing.T) {
		cfg := fastRetry(url)
		cfg.MaxPromptBytes = 100
		_, err := newClient(t, cfg).Complete(t.Context(), strings.Repeat("x ", 100))
		if !errors.Is(err, ErrPromptTooLarge) {
			t.Errorf("err = %v, want ErrPromptTooLarge", err)
		}
	})
	t.Run("server 413", func(t *testing.T) {
		comp, err := newClient(t, fastRetry(url)).Complete(t.Context(), strings.Repeat("x ", 1000))
		se, ok := errors.AsType[*StatusError](err)
		if !ok || se.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("err = %v, want StatusError 413", err)
		}
		if got, want := comp.Attempts, 1; got != want {
			t.Errorf("Attempts = %d, want %d", got, want)
		}
	})
}

func TestAPIKeyNeverInErrors(t *testing.T) {
	const key = "sk-SECRET-do-not-log-0123456789"
	// A hostile server that echoes the Authorization header into its error.
	echo := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			writeError(w, code, "test", "test", "bad key: "+r.Header.Get("Authorization"))
		}
	}
	refused := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return "http://" + ln.Addr().String()
	}
	tests := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{name: "echoed 401", url: func(t *testing.T) string {
			s := httptest.NewServer(echo(401))
			t.Cleanup(s.Close)
			return s.URL
		}},
		{name: "echoed 500", url: func(t *testing.T) string {
			s := httptest.NewServer(echo(500))
			t.Cleanup(s.Close)
			return s.URL
		}},
		{name: "key in URL, refused", url: func(t *testing.T) string { return refused() + "/?key=" + key }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fastRetry(tt.url(t))
			cfg.APIKey = key
			_, err := newClient(t, cfg).Complete(t.Context(), "x")
			if err == nil {
				t.Fatal("want an error")
			}
			t.Log(err)
			if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error leaks the key: %v", err)
			}
		})
	}
	t.Run("validation", func(t *testing.T) {
		_, err := NewClient(ClientConfig{URL: "ftp://" + key, APIKey: key})
		if err == nil || strings.Contains(err.Error(), key) {
			t.Errorf("NewClient err = %v, want an error without the key", err)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		hdr  map[string]string
		want time.Duration
	}{
		{name: "none", want: 0},
		{name: "seconds", hdr: map[string]string{"Retry-After": "2"}, want: 2 * time.Second},
		{name: "fractional seconds", hdr: map[string]string{"Retry-After": "0.05"}, want: 50 * time.Millisecond},
		{name: "ms preferred", hdr: map[string]string{"Retry-After": "1", "retry-after-ms": "20"}, want: 20 * time.Millisecond},
		{name: "date", hdr: map[string]string{"Retry-After": now.Add(3 * time.Second).Format(http.TimeFormat)}, want: 3 * time.Second},
		{name: "garbage", hdr: map[string]string{"Retry-After": "soon"}, want: 0},
		{name: "negative", hdr: map[string]string{"Retry-After": "-1"}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.hdr {
				h.Set(k, v)
			}
			if got := retryAfter(h, now); got != tt.want {
				t.Errorf("retryAfter(%v) = %v, want %v", tt.hdr, got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	c := newClient(t, ClientConfig{URL: "http://x", BaseBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	for n := 1; n <= 40; n++ {
		exp := min(time.Second, 100*time.Millisecond<<min(n-1, 20))
		if d := c.backoff(n, 0); d < exp/2 || d > exp {
			t.Errorf("backoff(%d) = %v, want in [%v, %v]", n, d, exp/2, exp)
		}
	}
	if d := c.backoff(1, 400*time.Millisecond); d < 400*time.Millisecond || d > 500*time.Millisecond {
		t.Errorf("backoff with 400ms hint = %v, want in [400ms, 500ms]", d)
	}
	for _, hint := range []time.Duration{time.Minute, math.MaxInt64} {
		if got, want := c.backoff(1, hint), time.Second; got != want {
			t.Errorf("backoff with %v hint = %v, want MaxBackoff %v", hint, got, want)
		}
	}
}

func TestNewClient(t *testing.T) {
	tests := []struct {
		name     string
		cfg      ClientConfig
		field    string // "" = valid
		endpoint string
	}{
		{name: "root", cfg: ClientConfig{URL: "http://h:1"}, endpoint: "http://h:1/v1/chat/completions"},
		{name: "v1", cfg: ClientConfig{URL: "https://api.example.com/v1/"}, endpoint: "https://api.example.com/v1/chat/completions"},
		{name: "full", cfg: ClientConfig{URL: "http://h/x/chat/completions"}, endpoint: "http://h/x/chat/completions"},
		{name: "no url", cfg: ClientConfig{}, field: "llm_url"},
		{name: "bad scheme", cfg: ClientConfig{URL: "h:1"}, field: "llm_url"},
		{name: "attempts", cfg: ClientConfig{URL: "http://h", MaxAttempts: -1}, field: "llm_max_attempts"},
		{name: "concurrency", cfg: ClientConfig{URL: "http://h", Concurrency: -1}, field: "concurrency"},
		{name: "timeout", cfg: ClientConfig{URL: "http://h", Timeout: -1}, field: "llm_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(tt.cfg)
			if tt.field != "" {
				if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field) {
					t.Errorf("err = %v, want ErrInvalidConfig naming %s", err, tt.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, want := c.endpoint, tt.endpoint; got != want {
				t.Errorf("endpoint = %q, want %q", got, want)
			}
		})
	}
}
