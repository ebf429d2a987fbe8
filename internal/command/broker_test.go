package command

import (
	"strings"
	"testing"
)

func TestBrokerClusterFlagsValidated(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		key  string
	}{
		{"routes without cluster", []string{"--routes", "nats-route://a:6222"}, "routes="},
		{"bad cluster port", []string{"--cluster-listen", "0.0.0.0:x"}, "cluster_listen="},
		{"bad route", []string{"--cluster-listen", "127.0.0.1:16222", "--routes", "http://a:6222"}, "routes=http://a:6222"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := ferry(t, nil, append([]string{"broker", "--listen", "127.0.0.1:0"}, tc.args...)...)
			if code != 2 || !strings.Contains(stderr, tc.key) {
				t.Errorf("exit %d, stderr %q; want 2 naming %q", code, stderr, tc.key)
			}
		})
	}
}
