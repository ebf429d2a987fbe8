package llm

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// ErrInvalidConfig is wrapped by every validation error of MockConfig and
// ClientConfig; the message names the field and its bad value.
var ErrInvalidConfig = errors.New("llm: invalid config")

// DefaultModel is the model name used when a config leaves Model empty.
const DefaultModel = "ferry-mock"

// MockConfig configures a Mock. The zero value of every field is its default:
// an instant, unlimited, never-failing server.
type MockConfig struct {
	// LatencyP50 is the median delay before a reply; 0 = none.
	LatencyP50 time.Duration
	// LatencyP99 makes the delay lognormal with this 99th percentile;
	// 0 (or <= LatencyP50) = every reply waits exactly LatencyP50.
	LatencyP99 time.Duration
	// RateLimit is the requests per second admitted by a token bucket; excess
	// requests get 429 with Retry-After and retry-after-ms. 0 = unlimited.
	RateLimit float64
	// Burst is the token bucket's size; 0 = one second's worth of RateLimit.
	Burst int
	// ErrorRate is the fraction of admitted requests answered 500, in [0, 1];
	// 0 = none.
	ErrorRate float64
	// ReplyRatio is completion tokens per prompt token; 0 = 0.25.
	ReplyRatio float64
	// MaxBodyBytes caps the request body; larger bodies get 413. 0 = 1 MiB.
	MaxBodyBytes int64
	// APIKey, if set, must arrive as "Authorization: Bearer <key>", else 401.
	// "" = accept any request.
	APIKey string
	// Model is echoed in replies when the request names none; "" = DefaultModel.
	Model string
	// Seed seeds the per-request RNGs (latency and error draws); 0 = 1.
	Seed uint64
}

// MockStats counts what a Mock has answered.
type MockStats struct {
	Requests    int64 // every request to the completions endpoint
	RateLimited int64 // answered 429
	Failed      int64 // answered 500 by ErrorRate
	OK          int64 // answered 200
}

// Mock is an OpenAI-compatible chat-completions server for tests and demos.
// It serves POST /v1/chat/completions and GET /healthz. Safe for concurrent use.
type Mock struct {
	cfg     MockConfig
	latency latencyModel
	limiter *rate.Limiter // nil = unlimited
	mux     *http.ServeMux
	seq     atomic.Uint64 // request counter, the second half of each RNG seed

	requests, limited, failed, ok atomic.Int64
}

// NewMock validates cfg, fills its defaults and returns a Mock.
func NewMock(cfg MockConfig) (*Mock, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ReplyRatio == 0 {
		cfg.ReplyRatio = 0.25
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.Model == "" {
		cfg.Model = DefaultModel
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	m := &Mock{cfg: cfg, latency: newLatencyModel(cfg.LatencyP50, cfg.LatencyP99), mux: http.NewServeMux()}
	if cfg.RateLimit > 0 {
		burst := cfg.Burst
		if burst == 0 {
			burst = max(1, int(math.Ceil(cfg.RateLimit)))
		}
		m.limiter = rate.NewLimiter(rate.Limit(cfg.RateLimit), burst)
	}
	m.mux.HandleFunc("/v1/chat/completions", m.completions)
	m.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return m, nil
}

// Validate reports the first field out of range, naming its config key
// (latency_p50, rate_limit, ...). Zero means the default.
func (c MockConfig) Validate() error {
	bad := func(key string, v any, why string) error {
		return fmt.Errorf("%w: %s=%v: %s", ErrInvalidConfig, key, v, why)
	}
	switch {
	case c.LatencyP50 < 0:
		return bad("latency_p50", c.LatencyP50, "must be >= 0")
	case c.LatencyP99 < 0:
		return bad("latency_p99", c.LatencyP99, "must be >= 0")
	case c.LatencyP99 > c.LatencyP50 && c.LatencyP50 == 0:
		return bad("latency_p50", c.LatencyP50, "must be > 0 when latency_p99 is set")
	case c.RateLimit < 0 || math.IsNaN(c.RateLimit):
		return bad("rate_limit", c.RateLimit, "must be >= 0")
	case c.Burst < 0:
		return bad("burst", c.Burst, "must be >= 0")
	case !(c.ErrorRate >= 0 && c.ErrorRate <= 1):
		return bad("error_rate", c.ErrorRate, "must be in [0, 1]")
	case c.ReplyRatio < 0 || math.IsNaN(c.ReplyRatio):
		return bad("reply_ratio", c.ReplyRatio, "must be >= 0")
	case c.MaxBodyBytes < 0:
		return bad("max_body_bytes", c.MaxBodyBytes, "must be >= 0")
	}
	return nil
}

// ServeHTTP routes to the completions endpoint and the health check.
func (m *Mock) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.mux.ServeHTTP(w, r) }

// Stats returns the counters so far.
func (m *Mock) Stats() MockStats {
	return MockStats{Requests: m.requests.Load(), RateLimited: m.limited.Load(), Failed: m.failed.Load(), OK: m.ok.Load()}
}

// Reply is the text the Mock answers to prompt sent as the only message with
// no max_tokens, so callers can check results without a server.
func (m *Mock) Reply(prompt string) string {
	n, _ := replyTokens(countTokens(prompt), m.cfg.ReplyRatio, 0)
	return replyText(prompt, n)
}

// completions answers in the order a real gateway would: cheap rejections
// (method, auth, rate limit, body) first and fast, then the model's latency,
// then the injected failure or the reply.
func (m *Mock) completions(w http.ResponseWriter, r *http.Request) {
	m.requests.Add(1)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", "use POST")
		return
	}
	if m.cfg.APIKey != "" && !m.authorized(r) {
		writeError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "missing or incorrect API key")
		return
	}
	if wait, ok := m.admit(); !ok {
		m.limited.Add(1)
		w.Header().Set("Retry-After", strconv.FormatInt(max(1, int64(math.Ceil(wait.Seconds()))), 10))
		w.Header().Set("Retry-After-Ms", strconv.FormatInt(max(1, int64(math.Ceil(float64(wait)/float64(time.Millisecond)))), 10))
		writeError(w, http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded", "rate limit reached, retry later")
		return
	}
	req, status, msg := m.decode(w, r)
	if status != 0 {
		code := "invalid_request"
		if status == http.StatusRequestEntityTooLarge {
			code = "request_too_large"
		}
		writeError(w, status, "invalid_request_error", code, msg)
		return
	}

	// One RNG per request, seeded from a counter: no shared lock between the
	// thousands of concurrent handlers, and a fixed Seed gives a fixed sequence.
	seq := m.seq.Add(1)
	rng := rand.New(rand.NewPCG(m.cfg.Seed, seq))
	delay := m.latency.draw(rng)
	fail := m.cfg.ErrorRate > 0 && rng.Float64() < m.cfg.ErrorRate
	if delay > 0 {
		// A parked timer, not a sleep loop: 5,000 waiting requests cost 5,000
		// goroutines and timers, and a client that hangs up frees its slot.
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
	}
	if fail {
		m.failed.Add(1)
		writeError(w, http.StatusInternalServerError, "server_error", "injected", "injected failure (MockConfig.ErrorRate)")
		return
	}
	m.ok.Add(1)
	writeJSON(w, http.StatusOK, m.respond(req, seq))
}

func (m *Mock) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(m.cfg.APIKey)) == 1
}

// admit takes a token, or reports how long until one is free.
func (m *Mock) admit() (time.Duration, bool) {
	if m.limiter == nil {
		return 0, true
	}
	res := m.limiter.Reserve()
	if d := res.Delay(); d > 0 {
		res.Cancel() // a rejected request must not consume a future token
		return d, false
	}
	return 0, true
}

// decode reads the body; a non-zero status says why it was rejected.
func (m *Mock) decode(w http.ResponseWriter, r *http.Request) (chatRequest, int, string) {
	var req chatRequest
	body := http.MaxBytesReader(w, r.Body, m.cfg.MaxBodyBytes)
	if err := json.NewDecoder(body).Decode(&req); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return req, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", m.cfg.MaxBodyBytes)
		}
		return req, http.StatusBadRequest, "request body is not valid JSON: " + err.Error()
	}
	if len(req.Messages) == 0 {
		return req, http.StatusBadRequest, "messages: at least one message is required"
	}
	if req.MaxTokens < 0 {
		return req, http.StatusBadRequest, "max_tokens: must be >= 0"
	}
	return req, 0, ""
}

// respond builds the reply: usage counts every message, the text answers the last.
func (m *Mock) respond(req chatRequest, seq uint64) chatResponse {
	prompt := 0
	for _, msg := range req.Messages {
		prompt += countTokens(msg.Content)
	}
	last := req.Messages[len(req.Messages)-1].Content
	n, truncated := replyTokens(prompt, m.cfg.ReplyRatio, req.MaxTokens)
	finish := "stop"
	if truncated {
		finish = "length"
	}
	model := req.Model
	if model == "" {
		model = m.cfg.Model
	}
	return chatResponse{
		ID:      "chatcmpl-mock-" + strconv.FormatUint(seq, 10),
		Object:  "chat.completion",
		Created: time.Now().Unix(),
		Model:   model,
		Choices: []chatChoice{{Message: chatMessage{Role: "assistant", Content: replyText(last, n)}, FinishReason: finish}},
		Usage:   chatUsage{PromptTokens: prompt, CompletionTokens: n, TotalTokens: prompt + n},
	}
}

func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	writeJSON(w, status, errorResponse{Error: errorDetail{Message: msg, Type: typ, Code: code}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client hung up; nothing left to tell it
}
