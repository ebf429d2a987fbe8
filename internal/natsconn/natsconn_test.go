package natsconn

import (
	"os"
	"path/filepath"

	"strings"
	"testing"

	"github.com/nats-io/nkeys"
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

func TestLogin(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "u.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, url string
		auth      Auth
		want      string
	}{
		{"anonymous", "nats://h:4222", Auth{}, "_"},
		{"user", "nats://h:4222", Auth{User: "worker-1", Password: "p"}, "worker-1"},
		{"nkey", "nats://h:4222", Auth{NKeySeed: seedFile}, pub},
		{"user in the url", "nats://x:4222, nats://w2:pw@h:4222", Auth{}, "w2"},
		{"token in the url", "nats://t0ken@h:4222", Auth{}, "_"},
		{"token", "nats://h:4222", Auth{Token: "t0ken"}, "_"},
		{"name that is no subject token", "nats://h:4222", Auth{User: "ops@site", Password: "p"}, "_"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Login(tc.url, tc.auth)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Login = %q, want %q", got, tc.want)
			}
		})
	}
}
