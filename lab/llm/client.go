package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

var (
	// ErrPromptTooLarge is returned, without a request, for a prompt over
	// ClientConfig.MaxPromptBytes.
	ErrPromptTooLarge = errors.New("llm: prompt too large")
	// ErrBadResponse is returned for a 2xx reply that is not a usable
	// completion: garbage JSON, no choices, or over MaxResponseBytes.
	ErrBadResponse = errors.New("llm: bad response")
)

// ClientConfig configures a Client. The zero value of every field except URL
// is its default.
type ClientConfig struct {
	// URL is the server. The client posts to URL+"/v1/chat/completions", to
	// URL+"/chat/completions" if URL ends in "/v1", or to URL itself if it
	// already ends in "/chat/completions". Required.
	URL string
	// APIKey is sent as "Authorization: Bearer <key>"; "" = no header. It never
	// appears in an error string.
	APIKey string
	// Model is the model name sent with each request; "" = DefaultModel.
	Model string
	// Timeout bounds each HTTP attempt; the ctx given to Complete bounds the
	// whole call, retries included. 0 = 60 s.
	Timeout time.Duration
	// MaxAttempts is the number of attempts per call, first one included;
	// 1 = never retry. 0 = 4.
	MaxAttempts int
	// BaseBackoff is the backoff before the first retry; it doubles per retry,
	// with jitter. 0 = 250 ms.
	BaseBackoff time.Duration
	// MaxBackoff caps any one wait between attempts, including a server's
	// Retry-After. 0 = 20 s.
	MaxBackoff time.Duration
	// Concurrency is the expected peak of concurrent calls; it sizes the idle
	// connection pool so that many calls reuse connections instead of
	// redialling. It does not limit Complete (Run does). 0 = 64.
	Concurrency int
	// MaxPromptBytes rejects longer prompts before sending. 0 = 768 KiB,
	// which fits the Mock's default 1 MiB body limit with room for JSON.
	MaxPromptBytes int
	// MaxResponseBytes caps a reply body read into memory. 0 = 4 MiB.
	MaxResponseBytes int64
	// MaxTokens is sent as max_tokens; 0 = not sent (the server's default).
	MaxTokens int
}

// Completion is the result of one Complete call.
type Completion struct {
	Text             string        // the first choice's message content
	FinishReason     string        // "stop", "length", ... as the server said
	PromptTokens     int           // usage.prompt_tokens
	CompletionTokens int           // usage.completion_tokens
	Attempts         int           // HTTP attempts made; 1 = no retry. Set on error too.
	Latency          time.Duration // wall time of the call, retries and backoff included. Set on error too.
}

// Client calls a chat-completions endpoint with retries. Safe for concurrent use;
// share one so calls share its connection pool.
type Client struct {
	cfg      ClientConfig
	endpoint string
	http     *http.Client
}

// NewClient validates cfg, fills its defaults and builds the connection pool.
func NewClient(cfg ClientConfig) (*Client, error) {
	endpoint, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.Timeout, 60*time.Second)
	def(&cfg.BaseBackoff, 250*time.Millisecond)
	def(&cfg.MaxBackoff, 20*time.Second)
	if cfg.Model == "" {
		cfg.Model = DefaultModel
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 4
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 64
	}
	if cfg.MaxPromptBytes == 0 {
		cfg.MaxPromptBytes = 768 << 10
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = 4 << 20
	}
	return &Client{cfg: cfg, endpoint: endpoint, http: &http.Client{Transport: newTransport(cfg.Concurrency)}}, nil
}

// newTransport is tuned for many concurrent calls to one host. The default
// transport keeps only 2 idle connections per host, so at concurrency 5,000
// nearly every call would dial and then discard a connection (and exhaust
// ephemeral ports); keeping Concurrency idle makes a run's connections live
// for the whole run.
func newTransport(concurrency int) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true, // one multiplexed connection on https servers that offer h2
		MaxIdleConns:          concurrency,
		MaxIdleConnsPerHost:   concurrency,
		MaxConnsPerHost:       0, // no cap: Run's concurrency is the cap
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

func (c ClientConfig) validate() (endpoint string, err error) {
	bad := func(key string, v any, why string) error {
		return fmt.Errorf("%w: %s=%v: %s", ErrInvalidConfig, key, v, why)
	}
	u, perr := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return "", bad("llm_url", `""`, "required")
	case perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return "", bad("llm_url", redactKey(c.URL, c.APIKey), "want http(s)://host[:port][/path]")
	case c.Timeout < 0:
		return "", bad("llm_timeout", c.Timeout, "must be >= 0")
	case c.MaxAttempts < 0:
		return "", bad("llm_max_attempts", c.MaxAttempts, "must be >= 0")
	case c.BaseBackoff < 0:
		return "", bad("base_backoff", c.BaseBackoff, "must be >= 0")
	case c.MaxBackoff < 0:
		return "", bad("max_backoff", c.MaxBackoff, "must be >= 0")
	case c.Concurrency < 0:
		return "", bad("concurrency", c.Concurrency, "must be >= 0")
	case c.MaxPromptBytes < 0:
		return "", bad("llm_max_prompt_bytes", c.MaxPromptBytes, "must be >= 0")
	case c.MaxResponseBytes < 0:
		return "", bad("max_response_bytes", c.MaxResponseBytes, "must be >= 0")
	case c.MaxTokens < 0:
		return "", bad("max_tokens", c.MaxTokens, "must be >= 0")
	}
	p := strings.TrimSuffix(u.Path, "/")
	switch {
	case strings.HasSuffix(p, "/chat/completions"):
	case strings.HasSuffix(p, "/v1"):
		p += "/chat/completions"
	default:
		p += "/v1/chat/completions"
	}
	u.Path = p
	return u.String(), nil
}

// CloseIdleConnections closes the pooled connections no call is using. A
// Client needs no Close; this frees sockets early, e.g. between benchmark runs.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// Complete sends prompt as one user message and returns the reply. It retries
// connection errors, attempt timeouts, 408, 429 and 5xx up to MaxAttempts,
// waiting for Retry-After (or retry-after-ms) when the server sends one and
// for a jittered exponential backoff otherwise. Other 4xx replies and bad
// 2xx bodies are not retried. The returned Completion's Attempts and Latency
// are set even on error.
func (c *Client) Complete(ctx context.Context, prompt string) (Completion, error) {
	start := time.Now()
	comp, err := c.complete(ctx, prompt, start)
	comp.Latency = time.Since(start)
	return comp, c.redact(err)
}

func (c *Client) complete(ctx context.Context, prompt string, start time.Time) (Completion, error) {
	var comp Completion
	if len(prompt) > c.cfg.MaxPromptBytes {
		return comp, fmt.Errorf("%w: %d bytes > MaxPromptBytes %d", ErrPromptTooLarge, len(prompt), c.cfg.MaxPromptBytes)
	}
	body, err := json.Marshal(chatRequest{Model: c.cfg.Model, Messages: []chatMessage{{Role: "user", Content: prompt}}, MaxTokens: c.cfg.MaxTokens})
	if err != nil {
		return comp, fmt.Errorf("llm: encode request: %w", err)
	}
	for {
		comp.Attempts++
		res, verdict := c.attempt(ctx, body)
		if verdict.err == nil {
			ch := res.Choices[0]
			comp.Text, comp.FinishReason = ch.Message.Content, ch.FinishReason
			comp.PromptTokens, comp.CompletionTokens = res.Usage.PromptTokens, res.Usage.CompletionTokens
			return comp, nil
		}
		if !verdict.retry || comp.Attempts >= c.cfg.MaxAttempts {
			return comp, fmt.Errorf("llm: complete (attempt %d of %d, %v): %w",
				comp.Attempts, c.cfg.MaxAttempts, time.Since(start).Round(time.Millisecond), verdict.err)
		}
		if err := sleep(ctx, c.backoff(comp.Attempts, verdict.wait)); err != nil {
			return comp, fmt.Errorf("llm: complete (gave up waiting to retry after %d attempts: %w): %w", comp.Attempts, err, verdict.err)
		}
	}
}

// verdict is what one attempt says about the next.
type verdict struct {
	err   error         // nil = success
	retry bool          // worth another attempt
	wait  time.Duration // the server's Retry-After; 0 = none given
}

// attempt makes one HTTP request with its own timeout.
func (c *Client) attempt(ctx context.Context, body []byte) (chatResponse, verdict) {
	var out chatResponse
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return out, verdict{err: fmt.Errorf("llm: build request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	}
	res, err := c.http.Do(req)
	if err != nil {
		// The caller's ctx ending is final; anything else (refused, reset,
		// this attempt's own timeout) may well work next time.
		return out, verdict{err: err, retry: ctx.Err() == nil}
	}
	defer func() {
		// Drain a little so the connection goes back to the pool; a huge body
		// is cheaper to drop with its connection than to read.
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		res.Body.Close()
	}()

	if res.StatusCode < 200 || res.StatusCode > 299 {
		return out, c.statusVerdict(res)
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, c.cfg.MaxResponseBytes+1))
	if err != nil {
		return out, verdict{err: fmt.Errorf("llm: read reply: %w", err), retry: ctx.Err() == nil}
	}
	if int64(len(data)) > c.cfg.MaxResponseBytes {
		return out, verdict{err: fmt.Errorf("%w: reply exceeds MaxResponseBytes %d", ErrBadResponse, c.cfg.MaxResponseBytes)}
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return out, verdict{err: fmt.Errorf("%w: decode reply: %w", ErrBadResponse, err)}
	}
	if len(out.Choices) == 0 {
		return out, verdict{err: fmt.Errorf("%w: reply has no choices", ErrBadResponse)}
	}
	return out, verdict{}
}

// redact removes the API key from an error's text, in case a server or a
// wrapped error echoed it; errors.Is and errors.As still see the chain.
func (c *Client) redact(err error) error {
	if err == nil || c.cfg.APIKey == "" || !strings.Contains(err.Error(), c.cfg.APIKey) {
		return err
	}
	return &redactedError{msg: redactKey(err.Error(), c.cfg.APIKey), err: err}
}

// redactKey replaces key in s; an empty key redacts nothing.
func redactKey(s, key string) string {
	if key == "" {
		return s
	}
	return strings.ReplaceAll(s, key, "[REDACTED]")
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
