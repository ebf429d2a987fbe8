package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// newMockServer starts a Mock on a loopback httptest server, closed at cleanup.
func newMockServer(tb testing.TB, cfg MockConfig) (*Mock, string) {
	tb.Helper()
	m, err := NewMock(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(m)
	tb.Cleanup(srv.Close)
	return m, srv.URL
}

func post(tb testing.TB, url, body string, hdr map[string]string) *http.Response {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { res.Body.Close() })
	return res
}

func decodeJSON[T any](tb testing.TB, r io.Reader) T {
	tb.Helper()
	var v T
	if err := json.NewDecoder(r).Decode(&v); err != nil {
		tb.Fatalf("decode reply: %v", err)
	}
	return v
}

func chatBody(prompt string) string {
	b, _ := json.Marshal(chatRequest{Model: "m", Messages: []chatMessage{{Role: "user", Content: prompt}}})
	return string(b)
}

func TestMockRejects(t *testing.T) {
	_, url := newMockServer(t, MockConfig{MaxBodyBytes: 1024, APIKey: "sk-test"})
	auth := map[string]string{"Authorization": "Bearer sk-test"}
	tests := []struct {
		name   string
		body   string
		hdr    map[string]string
		status int
		code   string
	}{
		{name: "bad json", body: "{not json", hdr: auth, status: 400, code: "invalid_request"},
		{name: "no messages", body: `{"model":"m","messages":[]}`, hdr: auth, status: 400, code: "invalid_request"},
		{name: "too large", body: chatBody(strings.Repeat("word ", 1000)), hdr: auth, status: 413, code: "request_too_large"},
		{name: "no key", body: chatBody("hi"), status: 401, code: "invalid_api_key"},
		{name: "wrong key", body: chatBody("hi"), hdr: map[string]string{"Authorization": "Bearer sk-nope"}, status: 401, code: "invalid_api_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := post(t, url, tt.body, tt.hdr)
			if got, want := res.StatusCode, tt.status; got != want {
				t.Fatalf("status = %d, want %d", got, want)
			}
			if got, want := res.Header.Get("Content-Type"), "application/json"; got != want {
				t.Errorf("Content-Type = %q, want %q", got, want)
			}
			e := decodeJSON[errorResponse](t, res.Body)
			if got, want := e.Error.Code, tt.code; got != want {
				t.Errorf("error code = %q, want %q (message %q)", got, want, e.Error.Message)
			}
		})
	}
	t.Run("too large names the limit", func(t *testing.T) {
		res := post(t, url, chatBody(strings.Repeat("word ", 1000)), auth)
		if e := decodeJSON[errorResponse](t, res.Body); !strings.Contains(e.Error.Message, "1024 bytes") {
			t.Errorf("message %q does not name the 1024-byte limit", e.Error.Message)
		}
	})
	t.Run("GET is 405", func(t *testing.T) {
		res, err := http.Get(url + "/v1/chat/completions")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if got, want := res.StatusCode, http.StatusMethodNotAllowed; got != want {
			t.Errorf("status = %d, want %d", got, want)
		}
	})
}

func TestMockHealthz(t *testing.T) {
	_, url := newMockServer(t, MockConfig{})
	res, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if got, want := res.StatusCode, http.StatusOK; got != want {
		t.Errorf("status = %d, want %d", got, want)
	}
}

func TestMockReply(t *testing.T) {
	m, url := newMockServer(t, MockConfig{ReplyRatio: 0.5})
	prompt := "the quick brown fox jumps over the lazy dog"
	res := post(t, url, chatBody(prompt), nil)
	if got, want := res.StatusCode, http.StatusOK; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
	r := decodeJSON[chatResponse](t, res.Body)
	if got, want := r.Choices[0].Message.Content, "dog lazy the over jumps"; got != want {
		t.Errorf("content = %q, want %q", got, want)
	}
	if got, want := r.Choices[0].Message.Content, m.Reply(prompt); got != want {
		t.Errorf("content = %q, Mock.Reply = %q", got, want)
	}
	if got, want := r.Usage, (chatUsage{PromptTokens: 9, CompletionTokens: 5, TotalTokens: 14}); got != want {
		t.Errorf("usage = %+v, want %+v", got, want)
	}
}

func TestReplyText(t *testing.T) {
	tests := []struct {
		name, prompt string
		n            int
		want         string
	}{
		{name: "empty", prompt: "  ", n: 3, want: ""},
		{name: "shorter", prompt: "a b c", n: 2, want: "c b"},
		{name: "cycles", prompt: "a b", n: 5, want: "b a b a b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := replyText(tt.prompt, tt.n); got != tt.want {
				t.Errorf("replyText(%q, %d) = %q, want %q", tt.prompt, tt.n, got, tt.want)
			}
		})
	}
}

func TestMockRateLimit(t *testing.T) {
	// 0.5/s with a burst of 1: the second request must wait ~2 s, so Retry-After is 2.
	m, url := newMockServer(t, MockConfig{RateLimit: 0.5, Burst: 1})
	if got, want := post(t, url, chatBody("hi"), nil).StatusCode, http.StatusOK; got != want {
		t.Fatalf("first status = %d, want %d", got, want)
	}
	res := post(t, url, chatBody("hi"), nil)
	if got, want := res.StatusCode, http.StatusTooManyRequests; got != want {
		t.Fatalf("second status = %d, want %d", got, want)
	}
	secs, err := strconv.Atoi(res.Header.Get("Retry-After"))
	if err != nil || secs < 1 || secs > 2 {
		t.Errorf("Retry-After = %q, want integer seconds in [1, 2]", res.Header.Get("Retry-After"))
	}
	ms, err := strconv.Atoi(res.Header.Get("retry-after-ms"))
	if err != nil || ms < 1 || ms > 2000 {
		t.Errorf("retry-after-ms = %q, want integer ms in [1, 2000]", res.Header.Get("retry-after-ms"))
	}
	if got, want := m.Stats(), (MockStats{Requests: 2, RateLimited: 1, OK: 1}); got != want {
		t.Errorf("stats = %+v, want %+v", got, want)
	}
}

func TestMockErrorRate(t *testing.T) {
	_, url := newMockServer(t, MockConfig{ErrorRate: 1})
	if got, want := post(t, url, chatBody("hi"), nil).StatusCode, http.StatusInternalServerError; got != want {
		t.Errorf("status = %d, want %d", got, want)
	}
}

func TestNewMockValidates(t *testing.T) {
	tests := []struct {
		name  string
		cfg   MockConfig
		field string
	}{
		{name: "error rate", cfg: MockConfig{ErrorRate: 1.5}, field: "error_rate"},
		{name: "negative latency", cfg: MockConfig{LatencyP50: -1}, field: "latency_p50"},
		{name: "p99 without p50", cfg: MockConfig{LatencyP99: time.Second}, field: "latency_p50"},
		{name: "rate", cfg: MockConfig{RateLimit: -1}, field: "rate_limit"},
		{name: "body", cfg: MockConfig{MaxBodyBytes: -1}, field: "max_body_bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewMock(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("NewMock(%+v) = %v, want an error naming %s", tt.cfg, err, tt.field)
			}
		})
	}
}

func TestLatencyModel(t *testing.T) {
	p50, p99 := 200*time.Millisecond, 2*time.Second
	l := newLatencyModel(p50, p99)
	if got, want := l.mu, math.Log(0.2); math.Abs(got-want) > 1e-12 {
		t.Errorf("mu = %v, want %v", got, want)
	}
	if got, want := l.sigma, math.Log(10)/2.326; math.Abs(got-want) > 1e-12 {
		t.Errorf("sigma = %v, want %v", got, want)
	}
	// Draws, not sleeps: a fixed seed makes this exact and instant.
	rng := rand.New(rand.NewPCG(1, 2))
	d := make([]time.Duration, 100_000)
	for i := range d {
		d[i] = l.draw(rng)
	}
	slices.Sort(d)
	near := func(got, want time.Duration, tol float64) bool {
		return math.Abs(float64(got)/float64(want)-1) < tol
	}
	if got := d[len(d)/2]; !near(got, p50, 0.03) {
		t.Errorf("sample p50 = %v, want ~%v", got, p50)
	}
	if got := d[len(d)*99/100]; !near(got, p99, 0.06) {
		t.Errorf("sample p99 = %v, want ~%v", got, p99)
	}
	if got, want := newLatencyModel(p50, 0).draw(rng), p50; got != want {
		t.Errorf("fixed draw = %v, want %v", got, want)
	}
}

func TestServeMock(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- ServeMock(ctx, "127.0.0.1:0", MockConfig{}, func(a string) { addrc <- a }) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("ServeMock: %v", err)
	}
	res, err := http.Post("http://"+addr+"/v1/chat/completions", "application/json", bytes.NewBufferString(chatBody("a b c d")))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got, want := res.StatusCode, http.StatusOK; got != want {
		t.Errorf("status = %d, want %d", got, want)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ServeMock after cancel = %v, want nil", err)
	}
}
