package llm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// shutdownGrace bounds how long ServeMock lets in-flight requests finish
// after ctx is done; the Mock's latencies are seconds at most, so more is a hang.
const shutdownGrace = 5 * time.Second

// mockTimeouts bound how long a client may take to send a request: a
// client that opens connections and trickles its headers or its body
// (slowloris) holds each connection only this long. The body is capped by
// MaxBodyBytes, so 30 s is generous even over a slow link.
type mockTimeouts struct {
	header, read time.Duration
}

var defaultMockTimeouts = mockTimeouts{header: 10 * time.Second, read: 30 * time.Second}

// ServeMock runs a Mock on addr (e.g. "127.0.0.1:0") until ctx is done, then
// shuts down gracefully. ready, if not nil, is called with the bound address
// once the listener accepts connections. It returns nil after a shutdown
// caused by ctx, or the error that stopped it.
func ServeMock(ctx context.Context, addr string, cfg MockConfig, ready func(addr string)) error {
	return serveMock(ctx, addr, cfg, ready, defaultMockTimeouts)
}

func serveMock(ctx context.Context, addr string, cfg MockConfig, ready func(addr string), to mockTimeouts) error {
	m, err := NewMock(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("llm: mock listen %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           m,
		ReadHeaderTimeout: to.header,
		ReadTimeout:       to.read,
		IdleTimeout:       2 * time.Minute, // keep pooled client connections across a run's gaps
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if ready != nil {
		ready(ln.Addr().String())
	}

	select {
	case err := <-served:
		return fmt.Errorf("llm: mock serve: %w", err)
	case <-ctx.Done():
	}
	// Shutdown order: stop accepting and close idle connections, let in-flight
	// replies finish for up to shutdownGrace, then cut the rest (closing a
	// connection cancels its request's context, which ends the latency wait).
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err = srv.Shutdown(sctx)
	if err != nil {
		_ = srv.Close()
	}
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("llm: mock serve: %w", serr)
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("llm: mock shutdown: %w", err)
	}
	return nil
}
