// Package health checks that a NATS server or an HTTP endpoint answers:
// `ferry health`, the healthcheck of ferry's FROM-scratch image (no shell,
// no curl). It checks and returns; it serves nothing (metrics serves the
// workers' /healthz).
package health

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/nats-io/nats.go"
)

// ErrBadURL is wrapped when the URL itself is unusable (a usage error).
var ErrBadURL = errors.New("health: bad url")

// NATS connects to url as a (no reconnects) and flushes one PING within
// timeout.
func NATS(url string, a natsconn.Auth, timeout time.Duration) error {
	opts, err := natsconn.Options("ferry-health", a, nil)
	if err != nil {
		return fmt.Errorf("%w: nats_url=%s: %v", ErrBadURL, natsconn.Redact(url), err)
	}
	nc, err := nats.Connect(url, append(opts, nats.Timeout(timeout), nats.NoReconnect())...)
	if err != nil {
		return fmt.Errorf("nats %s: %w", natsconn.Redact(url), err)
	}
	defer nc.Close()
	if err := nc.FlushTimeout(timeout); err != nil {
		return fmt.Errorf("nats %s: flush: %w", natsconn.Redact(url), err)
	}
	return nil
}

// HTTP gets url within timeout; it must answer 2xx.
func HTTP(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("%w: http=%s: %v", ErrBadURL, url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("http %s: %w", url, errors.Unwrap(err))
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("http %s: %s", url, resp.Status)
	}
	return nil
}
