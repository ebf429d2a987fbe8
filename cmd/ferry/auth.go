package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/natsconn"
)

// brokerUsers builds the broker's users from auth_file and the
// worker_/coordinator_ password keys. None = auth off.
func (o *Options) brokerUsers(log *slog.Logger) ([]broker.User, error) {
	var users []broker.User
	if o.AuthFile != "" {
		u, err := broker.LoadUsers(o.AuthFile)
		if err != nil {
			return nil, invalid("auth_file", o.AuthFile, err.Error())
		}
		if fi, err := os.Stat(o.AuthFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("auth_file is readable by other users; chmod 600 it", "auth_file", o.AuthFile, "mode", fi.Mode().Perm().String())
		}
		users = u
	}
	add := func(userKey, name, password string, role broker.Role) error {
		if password == "" {
			return nil
		}
		if name == "" {
			return invalid(userKey, `""`, "a user name is needed with its password")
		}
		users = append(users, broker.User{Name: name, Password: password, Role: role})
		return nil
	}
	if err := add("worker_user", o.WorkerUser, o.WorkerPassword, broker.RoleWorker); err != nil {
		return nil, err
	}
	if err := add("coordinator_user", o.CoordinatorUser, o.CoordinatorPassword, broker.RoleCoordinator); err != nil {
		return nil, err
	}
	return users, nil
}

// brokerTLS validates the broker's TLS keys, naming the one at fault.
func (o *Options) brokerTLS() (broker.TLS, error) {
	t := broker.TLS{Cert: o.TLSCert, Key: o.TLSKey, ClientCA: o.TLSClientCA}
	switch {
	case t.Cert != "" && t.Key == "":
		return t, invalid("tls_key", `""`, "must be set with tls_cert")
	case t.Key != "" && t.Cert == "":
		return t, invalid("tls_cert", `""`, "must be set with tls_key")
	case t.ClientCA != "" && t.Cert == "":
		return t, invalid("tls_client_ca", t.ClientCA, "mutual TLS needs tls_cert and tls_key too")
	}
	for _, f := range []struct{ key, path string }{{"tls_cert", t.Cert}, {"tls_key", t.Key}, {"tls_client_ca", t.ClientCA}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return t, invalid(f.key, f.path, "cannot read it")
		}
	}
	return t, nil
}

// describeAuth summarises users and TLS for the broker's log, without secrets.
func describeAuth(users []broker.User, t broker.TLS) (auth, tls string) {
	auth = "off (anonymous clients allowed)"
	if len(users) > 0 {
		names := make([]string, len(users))
		for i, u := range users {
			names[i] = u.String()
		}
		auth = strings.Join(names, ", ")
	}
	switch {
	case t.ClientCA != "":
		tls = "on, client certificates required"
	case t.Enabled():
		tls = "on"
	default:
		tls = "off"
	}
	return auth, tls
}

func hasPasswords(users []broker.User) bool {
	for _, u := range users {
		if u.Password != "" {
			return true
		}
	}
	return false
}

// loopback reports whether host only accepts connections from this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// childEnv passes a NATS URL and credentials to a child process through its
// environment: argv is readable by every user (ps), /proc/PID/environ only
// by the owner. Empty values override whatever the parent's environment
// held, so a child uses exactly these settings.
func childEnv(url string, a natsconn.Auth) []string {
	return []string{
		"FERRY_NATS_URL=" + url,
		"FERRY_NATS_USER=" + a.User,
		"FERRY_NATS_PASSWORD=" + a.Password,
		"FERRY_NATS_TOKEN=" + a.Token,
		"FERRY_NATS_NKEY_SEED=" + a.NKeySeed,
		"FERRY_NATS_CREDS=" + a.CredsFile,
		"FERRY_NATS_TLS_CA=" + a.TLSCA,
		"FERRY_NATS_TLS_CERT=" + a.TLSCert,
		"FERRY_NATS_TLS_KEY=" + a.TLSKey,
	}
}

// runCredentials are one `ferry run`'s throwaway users for its embedded
// broker: its workers cannot send work and nothing else on the machine can
// join the run without reading the coordinator's memory or environment.
type runCredentials struct {
	worker, coordinator natsconn.Auth
}

func newRunCredentials() runCredentials {
	return runCredentials{
		worker:      natsconn.Auth{User: "worker", Password: rand.Text()},
		coordinator: natsconn.Auth{User: "coordinator", Password: rand.Text()},
	}
}

func (c runCredentials) users() []broker.User {
	return []broker.User{
		{Name: c.worker.User, Password: c.worker.Password, Role: broker.RoleWorker},
		{Name: c.coordinator.User, Password: c.coordinator.Password, Role: broker.RoleCoordinator},
	}
}

// brokerError makes an auth or TLS setup failure a configuration error (exit 2).
func brokerError(err error) error {
	if errors.Is(err, broker.ErrAuthConfig) {
		return fmt.Errorf("%w: %w", coordinator.ErrInvalidConfig, err)
	}
	return err
}
