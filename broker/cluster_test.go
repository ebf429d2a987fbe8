package broker_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/internal/poll"
)

// A route sees every message of the cluster, so a route listener reachable
// beyond loopback needs a route password, like the client listener needs
// users.
func TestClusterListenBeyondLoopbackNeedsRouteAuth(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Serve returns at once if it starts at all
	log := slog.New(slog.DiscardHandler)
	base := broker.ServeConfig{Listen: "127.0.0.1:0", ClusterListen: "0.0.0.0:16222"}
	err := broker.Serve(ctx, base, log)
	if !errors.Is(err, broker.ErrInvalidConfig) || !strings.Contains(err.Error(), "cluster_password") {
		t.Fatalf("err = %v, want ErrInvalidConfig naming cluster_password", err)
	}
	loop := base
	loop.ClusterListen = "127.0.0.1:16222"
	if err := broker.Serve(ctx, loop, log); err != nil {
		t.Errorf("loopback routes without auth: %v, want it to start", err)
	}
}

// Routes log in: nodes with the same route password form a cluster (seed
// route URLs without credentials get them), and a route without the
// password is refused.
func TestClusterRouteAuth(t *testing.T) {
	cl := broker.Cluster{Port: -1, User: "route", Password: "s3cret"}
	a := natstest.NewBroker(t, broker.Options{ServerName: "a", Cluster: cl})
	addr := a.Server().ClusterAddr().String()
	cl.Routes = []string{"nats-route://" + addr}
	b := natstest.NewBroker(t, broker.Options{ServerName: "b", Cluster: cl})
	poll.WaitFor(t, 10*time.Second, "a route between a and b", func() bool {
		return a.Server().NumRoutes() > 0 && b.Server().NumRoutes() > 0
	})

	for _, tc := range []struct{ name, user, pass string }{
		{"no login", "", ""},
		{"wrong password", "route", "guess"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			r := bufio.NewReader(c)
			if _, err := r.ReadString('\n'); err != nil { // the server's INFO
				t.Fatal(err)
			}
			fmt.Fprintf(c, "CONNECT {\"verbose\":false,\"user\":%q,\"pass\":%q,\"name\":\"intruder\",\"cluster\":\"ferry\"}\r\nPING\r\n", tc.user, tc.pass)
			line, _ := r.ReadString('\n')
			if !strings.Contains(line, "Authorization Violation") {
				t.Errorf("route CONNECT %s: got %q, want an authorization violation", tc.name, line)
			}
		})
	}
}

// With the server's TLS on, the route listener speaks TLS only, and
// verifies the peer's certificate against tls_client_ca.
func TestClusterRoutesUseTLS(t *testing.T) {
	certs := natstest.NewCerts(t)
	a := natstest.NewBroker(t, broker.Options{ServerName: "a", TLS: broker.TLS{Cert: certs.ServerCert, Key: certs.ServerKey, ClientCA: certs.CA},
		Cluster: broker.Cluster{Port: -1, User: "route", Password: "s3cret"}})
	addr := a.Server().ClusterAddr().String()
	ca, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	dialTLS := func(cfg *tls.Config) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = bufio.NewReader(c).ReadString('\n') // TLS 1.3 reports a refused certificate on the first read
		return err
	}
	client, err := tls.LoadX509KeyPair(certs.ClientCert, certs.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := dialTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{client}}); err != nil {
		t.Errorf("TLS with a certificate signed by tls_client_ca: %v", err)
	}
	if err := dialTLS(&tls.Config{RootCAs: roots}); err == nil {
		t.Error("TLS without a certificate was accepted on the route port")
	}
}
