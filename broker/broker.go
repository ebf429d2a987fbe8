// Package broker runs nats-server inside a ferry process: the embedded
// default of `ferry run` and the standalone `ferry broker`. It is a thin,
// typed wrapper over server.Options; it does not route or inspect messages.
package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ErrNotReady is returned when the server does not accept connections in time.
var ErrNotReady = errors.New("broker: not ready for connections")

// Options configures the embedded server. The zero value is a loopback
// server on a random port with no monitoring.
type Options struct {
	Host        string        // listen host; "" = 127.0.0.1
	Port        int           // client port; 0 = random free port
	HTTPPort    int           // monitoring port (/varz, /connz); 0 = off, -1 = random
	MaxPayload  int32         // largest message in bytes; 0 = 8 MiB (nats default is 1 MiB)
	JetStream   bool          // enable JetStream
	StoreDir    string        // JetStream storage; "" = a temp dir chosen by the server
	ServerName  string        // "" = generated
	Debug       bool          // log protocol details
	Log         bool          // log server events to stderr
	ReadyWithin time.Duration // wait for readiness; 0 = 10s

	// Users, when not empty, turns authentication on: every client must log
	// in as one of them and gets its Role's subject permissions; anonymous
	// connections are refused. Empty = anyone may connect (loopback use).
	Users []User
	TLS   TLS // zero = plain TCP

	// Cluster joins the server to a NATS cluster; zero = standalone. Set
	// ServerName too, so logs and routes name each node.
	Cluster Cluster
	// ClientAdvertise is the host:port clients learn for this server from
	// cluster gossip; "" = the listen address (container-internal in Docker).
	ClientAdvertise string
}

// Cluster configures routes between brokers. Every node may list every
// node, itself included: a server ignores a route to itself.
//
// With User and Password, a node accepts only routes that log in with them
// and logs in with them on its own routes (seed routes without credentials
// in their URL get these; gossiped ones too): set the same pair on every
// node. With the server's TLS on, routes use TLS too, with the same
// certificate, verifying each other both ways against TLS.ClientCA (or the
// system roots): the certificate must then allow both server and client
// authentication (extendedKeyUsage serverAuth, clientAuth).
type Cluster struct {
	Name      string   // cluster name, the same on every node; "" = "ferry" when Port is set
	Host      string   // route listen host; "" = the client Host
	Port      int      // route listen port; 0 = not clustered, -1 = random
	Routes    []string // seed routes, e.g. nats-route://nats1:6222
	Advertise string   // host:port other nodes use to reach this one; "" = the listen address
	User      string   // route user; "" = routes need no login
	Password  string   // route password; never logged
}

// DefaultMaxPayload is ferry's broker payload limit: large enough for a
// 1,000-document embedding result (1.5 MiB) with room to spare.
const DefaultMaxPayload = 8 << 20

// Broker is a running embedded nats-server.
type Broker struct {
	srv *server.Server
}

// Start starts the server and waits until it accepts connections. The
// server stops when ctx is done or Shutdown is called.
func Start(ctx context.Context, o Options) (*Broker, error) {
	so := &server.Options{
		Host:       o.Host,
		Port:       o.Port,
		HTTPPort:   o.HTTPPort,
		MaxPayload: o.MaxPayload,
		JetStream:  o.JetStream,
		StoreDir:   o.StoreDir,
		ServerName: o.ServerName,
		NoSigs:     true,
		NoLog:      !o.Log,
		Debug:      o.Debug,
	}
	if so.Host == "" {
		so.Host = "127.0.0.1"
	}
	if so.Port == 0 {
		so.Port = server.RANDOM_PORT
	}
	if so.MaxPayload == 0 {
		so.MaxPayload = DefaultMaxPayload
	}
	if o.HTTPPort != 0 {
		so.HTTPHost = so.Host
	}
	if err := applyUsers(so, o.Users); err != nil {
		return nil, err
	}
	if err := applyTLS(so, o.TLS); err != nil {
		return nil, err
	}
	so.ClientAdvertise = o.ClientAdvertise
	if c := o.Cluster; c.Port != 0 {
		so.Cluster = server.ClusterOpts{Name: c.Name, Host: c.Host, Port: c.Port, Advertise: c.Advertise}
		if so.Cluster.Name == "" {
			so.Cluster.Name = "ferry"
		}
		if so.Cluster.Host == "" {
			so.Cluster.Host = so.Host
		}
		if len(c.Routes) > 0 {
			so.Routes = server.RoutesFromStr(strings.Join(c.Routes, ","))
		}
		if err := applyRouteAuth(so, c, o.TLS); err != nil {
			return nil, err
		}
	}
	srv, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("broker: configure: %w", err)
	}
	if o.Log {
		srv.ConfigureLogger()
	}
	go srv.Start()
	wait := o.ReadyWithin
	if wait == 0 {
		wait = 10 * time.Second
	}
	if !srv.ReadyForConnections(wait) {
		srv.Shutdown()
		return nil, fmt.Errorf("%w within %s on %s:%d", ErrNotReady, wait, so.Host, so.Port)
	}
	b := &Broker{srv: srv}
	go func() { // owned by the server: exits when the server shuts down
		select {
		case <-ctx.Done():
			b.Shutdown()
		case <-b.done():
		}
	}()
	return b, nil
}

func (b *Broker) done() <-chan struct{} {
	ch := make(chan struct{})
	go func() { b.srv.WaitForShutdown(); close(ch) }()
	return ch
}

// URL is the client URL, e.g. nats://127.0.0.1:4222 (tls://... with TLS).
func (b *Broker) URL() string { return b.srv.ClientURL() }

// MonitorURL is the monitoring base URL, or "" when monitoring is off.
func (b *Broker) MonitorURL() string {
	if a := b.srv.MonitorAddr(); a != nil {
		return "http://" + a.String()
	}
	return ""
}

// InProcess is the option that connects a client in this process to the
// broker over an in-memory pipe rather than loopback TCP: no syscalls and no
// kernel copies on that side of the hop. The coordinator of an embedded run
// uses it; worker processes still cross TCP.
func (b *Broker) InProcess() nats.Option { return nats.InProcessServer(b.srv) }

// Server exposes the underlying server for tests and diagnostics.
func (b *Broker) Server() *server.Server { return b.srv }

// Version is the embedded nats-server version.
func Version() string { return server.VERSION }

// Shutdown stops the server and waits for it to finish.
func (b *Broker) Shutdown() {
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
}

// Wait blocks until the server has shut down.
func (b *Broker) Wait() { b.srv.WaitForShutdown() }
