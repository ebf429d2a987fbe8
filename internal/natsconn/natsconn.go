// Package natsconn is the one place ferry's NATS client connections are
// configured: reconnect policy, credentials and TLS, and URL redaction, so
// workers and coordinators behave the same when a broker restarts and never
// print a secret.
package natsconn

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Auth holds client credentials and TLS settings. Zero value: anonymous, no TLS.
type Auth struct {
	User      string // user name for user/password auth
	Password  string // never logged
	Token     string // token auth; never logged
	NKeySeed  string // path to an nkey seed file
	CredsFile string // path to a .creds file (JWT + seed)
	TLSCA     string // CA bundle to verify the server; "" = system roots when TLS is on
	TLSCert   string // client certificate (mutual TLS)
	TLSKey    string // client key
}

// Options returns the connection options ferry uses everywhere: a name,
// unlimited reconnects with a short wait and a deliberate reconnect buffer,
// a short ping interval so a dead broker is noticed in seconds, and auth.
func Options(name string, a Auth, log *slog.Logger) ([]nats.Option, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.ReconnectBufSize(64 << 20), // a few in-flight batches survive a broker restart
		nats.PingInterval(2 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
	}
	if a.User != "" {
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	}
	if a.Token != "" {
		opts = append(opts, nats.Token(a.Token))
	}
	if a.NKeySeed != "" {
		o, err := nats.NkeyOptionFromSeed(a.NKeySeed)
		if err != nil {
			return nil, fmt.Errorf("nats nkey seed %s: %w", a.NKeySeed, err)
		}
		opts = append(opts, o)
	}
	if a.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	}
	if a.TLSCA != "" {
		opts = append(opts, nats.RootCAs(a.TLSCA))
	}
	if a.TLSCert != "" || a.TLSKey != "" {
		opts = append(opts, nats.ClientCert(a.TLSCert, a.TLSKey))
	}
	return opts, nil
}

// Redact hides credentials in a comma-separated list of NATS URLs.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			parts[i] = "<unparsable url>"
			continue
		}
		if u.User != nil {
			u.User = url.User("***")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
