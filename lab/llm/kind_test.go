package llm

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestErrorKind(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("<html>not json"))
	}))
	t.Cleanup(garbage.Close)
	_, storm := newMockServer(t, MockConfig{ErrorRate: 1})
	_, slow := newMockServer(t, MockConfig{LatencyP50: time.Hour})

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name   string
		url    string
		ctx    context.Context
		prompt string
		want   string
	}{
		{"prompt too large", storm, context.Background(), strings.Repeat("x", 101), KindPromptTooLarge},
		{"garbage JSON", garbage.URL, context.Background(), "hi", KindBadResponse},
		{"connection refused", refused, context.Background(), "hi", KindRefused},
		{"500 storm", storm, context.Background(), "hi", "http_500"},
		{"attempt timeout", slow, context.Background(), "hi", KindTimeout},
		{"canceled", slow, canceled, "hi", KindCanceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fastRetry(tc.url)
			cfg.MaxPromptBytes, cfg.Timeout = 100, 50*time.Millisecond
			_, err := newClient(t, cfg).Complete(tc.ctx, tc.prompt)
			if got := ErrorKind(err); got != tc.want {
				t.Errorf("ErrorKind(%v) = %q, want %q", err, got, tc.want)
			}
		})
	}
	if got := ErrorKind(nil); got != "" {
		t.Errorf("ErrorKind(nil) = %q", got)
	}
}

func TestTally(t *testing.T) {
	var ty Tally
	ty.Add(5, Completion{}, &StatusError{Code: 500})
	ty.Add(2, Completion{}, ErrBadResponse)
	ty.Add(0, Completion{PromptTokens: 7, CompletionTokens: 2}, nil)
	ty.Add(9, Completion{}, &StatusError{Code: 500})
	if got, want := ty.ByKind["http_500"], int64(2); got != want {
		t.Errorf("http_500 = %d, want %d", got, want)
	}
	if got, want := ty.ByKind[KindBadResponse], int64(1); got != want {
		t.Errorf("bad_response = %d, want %d", got, want)
	}
	if !strings.HasPrefix(ty.FirstError, "call 2: ") {
		t.Errorf("first error = %q, want call 2's", ty.FirstError)
	}
	if ty.PromptTokens != 7 || ty.CompletionTokens != 2 {
		t.Errorf("tokens = %d, %d", ty.PromptTokens, ty.CompletionTokens)
	}
}

// TestWarmFillsThePool checks that after Warm(n) a run of n concurrent
// calls dials no connection.
func TestWarmFillsThePool(t *testing.T) {
	const n = 40
	m, err := NewMock(MockConfig{LatencyP50: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(m)
	var conns atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	cfg := fastRetry(srv.URL)
	cfg.Concurrency = n
	c := newClient(t, cfg)
	opened, err := c.Warm(t.Context(), n)
	if err != nil {
		t.Fatal(err)
	}
	if opened != n {
		t.Fatalf("Warm opened %d connections, want %d", opened, n)
	}
	before := int(conns.Load())
	if before < opened {
		t.Errorf("server saw %d connections, Warm reported %d", before, opened)
	}
	if got := m.Stats().OK; got != 0 {
		t.Errorf("Warm made %d completions, want none", got)
	}
	ps := make([]string, n)
	for i := range ps {
		ps[i] = "warm pool test"
	}
	st, err := Run(t.Context(), c, slices.All(ps), n, nil)
	if err != nil || st.Errors != 0 {
		t.Fatalf("run: %v, %d errors", err, st.Errors)
	}
	if dialed := int(conns.Load()) - before; dialed != 0 {
		t.Errorf("run dialed %d connections after Warm pooled %d", dialed, opened)
	}
}
