// Package natsconn is the one place ferry's NATS client connections are
// configured: reconnect policy, credentials and TLS, and URL redaction, so
// workers and coordinators behave the same when a broker restarts and never
// print a secret.
package natsconn

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/ferrylab/ferry/proto"
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
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			asyncError(log, sub, err)
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
	login, err := Login("", a)
	if err != nil {
		return nil, err
	}
	opts = append(opts, InboxPrefix(login))
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

// InboxPrefix is the connection option that puts a client's reply inboxes
// under its login (proto.InboxPrefix), the only inbox a broker with ferry's
// roles lets it read. A login that cannot be a subject token (an admin's
// "ops@site", say) counts as anonymous.
func InboxPrefix(login string) nats.Option {
	return nats.CustomInboxPrefix(proto.InboxPrefix(subjectLogin(login)))
}

func subjectLogin(login string) string {
	if !proto.ValidLogin(login) {
		return proto.AnonymousLogin
	}
	return login
}

// Login is the name a broker knows a client connecting to url with a by,
// as ferry's subjects spell it: the user name, the public key of the nkey
// seed, or the user of a user:password@ URL; proto.AnonymousLogin for
// anything else (anonymous, a token, a .creds file).
func Login(url string, a Auth) (string, error) {
	switch {
	case a.NKeySeed != "":
		o, err := nats.NkeyOptionFromSeed(a.NKeySeed)
		if err != nil {
			return "", fmt.Errorf("nats nkey seed %s: %w", a.NKeySeed, err)
		}
		var key nats.Options
		_ = o(&key)
		return subjectLogin(key.Nkey), nil
	case a.User != "":
		return subjectLogin(a.User), nil
	}
	return urlLogin(url), nil
}

// urlLogin is the user of the first user:password@ in a list of URLs, or
// proto.AnonymousLogin.
func urlLogin(urls string) string {
	for _, p := range strings.Split(urls, ",") {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, ok := u.User.Password(); ok {
			return subjectLogin(u.User.Username())
		}
	}
	return proto.AnonymousLogin
}

// asyncError logs what the broker or the client library reports outside a
// call: permission violations and slow consumers (a subscription over its
// pending limit drops messages). It names the subject and the limit.
func asyncError(log *slog.Logger, sub *nats.Subscription, err error) {
	if sub == nil {
		log.Warn("nats error", "err", err)
		return
	}
	if errors.Is(err, nats.ErrSlowConsumer) {
		msgs, bytes, _ := sub.PendingLimits()
		log.Warn("nats slow consumer: messages dropped over the subscription's pending limit",
			"subject", sub.Subject, "pending_limit_msgs", msgs, "pending_limit_bytes", bytes)
		return
	}
	log.Warn("nats error", "subject", sub.Subject, "err", err)
}

// Redact hides credentials in a comma-separated list of URLs (NATS, or an
// HTTP API's): user info and the query string, where keys hide.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			parts[i] = "<unparsable url>"
			continue
		}
		if u.RawQuery != "" {
			u.RawQuery = "***"
		}
		if u.User != nil {
			u.User = nil // url.User("***") would print %2A%2A%2A
			parts[i] = strings.Replace(u.String(), "://", "://***@", 1)
			continue
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// Connect opens a connection named name to url with the credentials a;
// extra adds options (an embedded broker's InProcess, say). Its errors name
// the URL with any password redacted.
func Connect(url, name string, a Auth, log *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	opts, err := Options(name, a, log)
	if err != nil {
		return nil, fmt.Errorf("nats_url=%s: %w", Redact(url), err)
	}
	login, err := Login(url, a) // a user:password@ in url, too
	if err != nil {
		return nil, fmt.Errorf("nats_url=%s: %w", Redact(url), err)
	}
	nc, err := nats.Connect(url, append(append(opts, InboxPrefix(login)), extra...)...)
	if err != nil {
		return nil, fmt.Errorf("nats_url=%s: cannot connect: %w", Redact(url), err)
	}
	return nc, nil
}
