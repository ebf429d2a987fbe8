package command

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ferrylab/ferry/internal/natstest"
)

func TestHealthExitCodes(t *testing.T) {
	_, natsURL := natstest.NewServer(t)
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	t.Cleanup(ok.Close)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "worker: not registered yet", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		says string
	}{
		{"nats up", nil, []string{"--nats-url", natsURL}, 0, ""},
		{"nats down", nil, []string{"--nats-url", "nats://127.0.0.1:1", "--timeout", "1s"}, 1, "nats://127.0.0.1:1"},
		{"http 200", nil, []string{"--http", ok.URL}, 0, ""},
		{"http 503", nil, []string{"--http", down.URL}, 1, "503"},
		{"both, http down", nil, []string{"--nats-url", natsURL, "--http", down.URL}, 1, "503"},
		{"env url is not a check", []string{"FERRY_NATS_URL=nats://127.0.0.1:1"}, []string{"--http", ok.URL}, 0, ""},
		{"nothing to check", nil, nil, 2, "--nats-url or --http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := ferry(t, tc.env, append([]string{"health"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			if !strings.Contains(stderr, tc.says) {
				t.Errorf("stderr %q does not say %q", stderr, tc.says)
			}
		})
	}
}
