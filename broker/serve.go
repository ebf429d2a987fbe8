package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/ferrylab/ferry/internal/natsconn"
)

// ErrInvalidConfig is wrapped by every error of ServeConfig's checks; each
// names the key at fault.
var ErrInvalidConfig = errors.New("broker: invalid configuration")

// ServeConfig is the standalone broker of `ferry broker`, as its keys are
// written: addresses as host:port, routes as URLs. The zero value of a
// field is its default unless said otherwise.
type ServeConfig struct {
	Listen     string // client address host:port; required
	HTTPPort   int    // monitoring port; 0 = off
	JetStream  bool
	StoreDir   string // JetStream storage; "" = a temporary folder
	MaxPayload int    // bytes, 1 to 64 MiB; 0 = DefaultMaxPayload

	AuthFile            string // users and roles (LoadUsers); "" = none
	WorkerUser          string // the user made by WorkerPassword
	WorkerPassword      string // "" = no such user
	CoordinatorUser     string // the user made by CoordinatorPassword
	CoordinatorPassword string // "" = no such user
	AllowAnonymous      bool   // accept anonymous clients beyond loopback
	TLS                 TLS

	ServerName       string
	ClusterListen    string // route address host:port; "" = standalone
	ClusterName      string
	Routes           string // comma separated nats-route://host:port
	ClusterAdvertise string
	ClientAdvertise  string
	ClusterUser      string // the user routes log in as; "" = "ferry-route" when ClusterPassword is set
	ClusterPassword  string // route password, the same on every node; "" = routes need no login
}

func invalid(key string, v any, why string) error {
	return fmt.Errorf("%w: %s=%v: %s", ErrInvalidConfig, key, v, why)
}

// Serve runs the broker until ctx is done. A broker reachable beyond
// loopback refuses to start without auth unless AllowAnonymous.
func Serve(ctx context.Context, c ServeConfig, log *slog.Logger) error {
	host, portStr, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return invalid("listen", c.Listen, "want host:port")
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return invalid("listen", c.Listen, "bad port")
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	if c.MaxPayload < 0 || c.MaxPayload > 64<<20 {
		return invalid("max_payload", c.MaxPayload, "must be between 1 and 64 MiB")
	}
	users, err := c.users(log)
	if err != nil {
		return err
	}
	if err := c.checkTLS(); err != nil {
		return err
	}
	switch {
	case len(users) == 0 && !loopback(host) && !c.AllowAnonymous:
		return invalid("listen", c.Listen, "a broker reachable beyond loopback must require auth: set worker_password and coordinator_password, or auth_file (or allow_anonymous=true); see docs/auth.md")
	case hasPasswords(users) && !c.TLS.Enabled() && !loopback(host):
		log.Warn("auth without TLS: passwords cross the network in clear text; set tls_cert and tls_key")
	}
	cluster, err := c.cluster()
	if err != nil {
		return err
	}
	if cluster.Port != 0 && !loopback(cluster.Host) {
		switch {
		case cluster.Password == "" && !c.AllowAnonymous:
			return invalid("cluster_listen", c.ClusterListen, "routes reachable beyond loopback must require auth: set cluster_password, the same on every node (or allow_anonymous=true); see docs/auth.md")
		case cluster.Password != "" && !c.TLS.Enabled():
			log.Warn("route auth without TLS: the route password and all traffic cross the network in clear text; set tls_cert and tls_key")
		}
	}
	b, err := Start(ctx, Options{
		Host: host, Port: port, HTTPPort: c.HTTPPort, JetStream: c.JetStream, StoreDir: c.StoreDir,
		MaxPayload: int32(c.MaxPayload), Log: true, Users: users, TLS: c.TLS,
		ServerName: c.ServerName, Cluster: cluster, ClientAdvertise: c.ClientAdvertise,
	})
	if errors.Is(err, ErrAuthConfig) {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if err != nil {
		return err
	}
	auth, tls := describeAuth(users, c.TLS)
	log.Info("broker ready", "url", b.URL(), "monitor", b.MonitorURL(), "nats_server", Version(),
		"auth", auth, "tls", tls, "max_payload", c.MaxPayload,
		"server_name", c.ServerName, "cluster_listen", c.ClusterListen, "routes", natsconn.Redact(c.Routes), "route_auth", cluster.User != "")
	<-ctx.Done()
	b.Shutdown()
	return nil
}

// users builds the broker's users from AuthFile and the password keys.
// None = auth off.
func (c ServeConfig) users(log *slog.Logger) ([]User, error) {
	var users []User
	if c.AuthFile != "" {
		u, err := LoadUsers(c.AuthFile)
		if err != nil {
			return nil, invalid("auth_file", c.AuthFile, err.Error())
		}
		if fi, err := os.Stat(c.AuthFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("auth_file is readable by other users; chmod 600 it", "auth_file", c.AuthFile, "mode", fi.Mode().Perm().String())
		}
		users = u
	}
	add := func(userKey, name, password string, role Role) error {
		if password == "" {
			return nil
		}
		if name == "" {
			return invalid(userKey, `""`, "a user name is needed with its password")
		}
		users = append(users, User{Name: name, Password: password, Role: role})
		return nil
	}
	if err := add("worker_user", c.WorkerUser, c.WorkerPassword, RoleWorker); err != nil {
		return nil, err
	}
	if err := add("coordinator_user", c.CoordinatorUser, c.CoordinatorPassword, RoleCoordinator); err != nil {
		return nil, err
	}
	return users, nil
}

// checkTLS validates the TLS keys, naming the one at fault.
func (c ServeConfig) checkTLS() error {
	t := c.TLS
	switch {
	case t.Cert != "" && t.Key == "":
		return invalid("tls_key", `""`, "must be set with tls_cert")
	case t.Key != "" && t.Cert == "":
		return invalid("tls_cert", `""`, "must be set with tls_key")
	case t.ClientCA != "" && t.Cert == "":
		return invalid("tls_client_ca", t.ClientCA, "mutual TLS needs tls_cert and tls_key too")
	}
	for _, f := range []struct{ key, path string }{{"tls_cert", t.Cert}, {"tls_key", t.Key}, {"tls_client_ca", t.ClientCA}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return invalid(f.key, f.path, "cannot read it")
		}
	}
	return nil
}

// cluster validates the cluster keys; no ClusterListen means standalone.
func (c ServeConfig) cluster() (Cluster, error) {
	if c.ClusterListen == "" {
		if c.Routes != "" {
			return Cluster{}, invalid("routes", c.Routes, "needs cluster_listen")
		}
		return Cluster{}, nil
	}
	host, portStr, err := net.SplitHostPort(c.ClusterListen)
	if err != nil {
		return Cluster{}, invalid("cluster_listen", c.ClusterListen, "want host:port")
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return Cluster{}, invalid("cluster_listen", c.ClusterListen, "bad port")
	}
	cl := Cluster{Name: c.ClusterName, Host: host, Port: port, Advertise: c.ClusterAdvertise, Password: c.ClusterPassword}
	if cl.Host == "" {
		cl.Host = c.listenHost()
	}
	if cl.Password != "" {
		cl.User = c.ClusterUser
		if cl.User == "" {
			cl.User = "ferry-route"
		}
	}
	for _, r := range strings.Split(c.Routes, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		u, err := url.Parse(r)
		if err != nil || u.Host == "" || (u.Scheme != "nats-route" && u.Scheme != "nats") {
			return Cluster{}, invalid("routes", r, "want nats-route://host:port")
		}
		cl.Routes = append(cl.Routes, r)
	}
	return cl, nil
}

// listenHost is the client listen host ("" when Listen is malformed).
func (c ServeConfig) listenHost() string {
	host, _, _ := net.SplitHostPort(c.Listen)
	return host
}

// describeAuth summarises users and TLS for the log, without secrets.
func describeAuth(users []User, t TLS) (auth, tls string) {
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

func hasPasswords(users []User) bool {
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
