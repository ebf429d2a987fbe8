package llm

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// StatusError is a non-2xx reply.
type StatusError struct {
	Code       int           // HTTP status
	Message    string        // the server's error.message (or body start), API key redacted
	RetryAfter time.Duration // from retry-after-ms or Retry-After; 0 = none sent
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("server answered %d %s: %s", e.Code, http.StatusText(e.Code), e.Message)
}

// statusVerdict reads a non-2xx reply. 429 and 503 say "come back later" and
// may say when; 408 and other 5xx are the server's trouble and worth a retry;
// any other 4xx is our request's fault and would fail again.
func (c *Client) statusVerdict(res *http.Response) verdict {
	e := &StatusError{Code: res.StatusCode, Message: c.errorMessage(res.Body)}
	if res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusServiceUnavailable {
		e.RetryAfter = retryAfter(res.Header, time.Now())
	}
	retry := res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusRequestTimeout || res.StatusCode >= 500
	return verdict{err: e, retry: retry, wait: e.RetryAfter}
}

// errorMessage extracts error.message from an OpenAI error body, or the
// body's start when it is not one (a proxy's HTML page, say).
func (c *Client) errorMessage(body io.Reader) string {
	data, _ := io.ReadAll(io.LimitReader(body, 4<<10))
	var e errorResponse
	msg := strings.TrimSpace(string(data))
	if json.Unmarshal(data, &e) == nil && e.Error.Message != "" {
		msg = e.Error.Message
	}
	// Redact before truncating, or a cut could leave half a key behind.
	msg = redactKey(msg, c.cfg.APIKey)
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return msg
}

// retryAfter reads the server's wait hint. OpenAI's retry-after-ms is
// preferred because Retry-After's whole seconds overstate sub-second waits
// fivefold or more; Retry-After may be seconds (integer or not) or an HTTP date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if d, ok := parseWait(v, time.Millisecond); ok {
			return d
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if d, ok := parseWait(v, time.Second); ok {
		return d
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now))
	}
	return 0
}

// parseWait reads a non-negative number of units, saturating instead of
// overflowing: a hostile "1e308" must mean "a long time", not a negative wait.
func parseWait(v string, unit time.Duration) (time.Duration, bool) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f >= 0) { // also rejects NaN
		return 0, false
	}
	if f*float64(unit) >= math.MaxInt64 {
		return time.Duration(math.MaxInt64), true
	}
	return time.Duration(f * float64(unit)), true
}

// backoff is the wait before attempt n+1. With a server hint it waits that
// plus up to 25% more, so thousands of callers told the same instant do not
// return in one burst; without one, "equal jitter" exponential backoff: half
// of BaseBackoff*2^(n-1) fixed, half random. Both are capped by MaxBackoff.
// Hand-written rather than a backoff library because the hint handling is
// most of it and the module stays dependency-free.
func (c *Client) backoff(n int, hint time.Duration) time.Duration {
	if hint >= c.cfg.MaxBackoff {
		return c.cfg.MaxBackoff // before adding jitter, which could overflow
	}
	if hint > 0 {
		return min(c.cfg.MaxBackoff, hint+rand.N(hint/4+1))
	}
	exp := c.cfg.BaseBackoff
	for i := 1; i < n && exp < c.cfg.MaxBackoff; i++ {
		exp *= 2
	}
	exp = min(exp, c.cfg.MaxBackoff)
	return exp/2 + rand.N(exp/2+1)
}

// sleep waits d or until ctx is done, whichever is first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
