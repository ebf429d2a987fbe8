package natsconn

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"no credentials", "nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"user and password", "nats://coordinator:s3cret@broker:4222", "nats://***@broker:4222"},
		{"token", "tls://t0ken@broker:4222", "tls://***@broker:4222"},
		{"list", "nats://a:s3cret@b1:4222, nats://b2:4222", "nats://***@b1:4222,nats://b2:4222"},
		{"unparsable", "nats://a:s3cret@b1:42x22\x7f", "<unparsable url>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Redact(tc.in)
			if got != tc.want {
				t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if strings.Contains(got, "s3cret") || strings.Contains(got, "t0ken") {
				t.Errorf("Redact(%q) = %q leaks a secret", tc.in, got)
			}
		})
	}
}
