package main

import (
	"context"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/ferrylab/ferry/broker"
	"github.com/spf13/cobra"
)

func newCmdBroker() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run a standalone NATS server (nats-server embedded)",
		Long: `broker runs nats-server in this process. On a loopback address it accepts
anonymous clients; listening beyond loopback it refuses to start without
auth: set worker_password and coordinator_password (env FERRY_WORKER_PASSWORD,
FERRY_COORDINATOR_PASSWORD) or an auth_file, or allow_anonymous=true.
Workers may only serve work subjects and reply; coordinators may only send
work and read their replies. See docs/auth.md.`,
		Example: `  ferry broker                                  # 127.0.0.1:4222, monitoring on 8222
  FERRY_WORKER_PASSWORD=... FERRY_COORDINATOR_PASSWORD=... ferry broker --listen 0.0.0.0:4222
  ferry broker --listen 0.0.0.0:4222 --auth-file users.yaml --tls-cert server.pem --tls-key server-key.pem
  ferry broker --listen 0.0.0.0:4222 --http-port 8222 --jetstream --store-dir /data
  ferry broker --listen 0.0.0.0:4222 --server-name n1 --cluster-listen 0.0.0.0:6222 \
      --routes nats-route://n1:6222,nats-route://n2:6222,nats-route://n3:6222`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := loadOptions(cmd)
			if err != nil {
				return err
			}
			return runBroker(cmd.Context(), o)
		},
	}
	fs := cmd.Flags()
	fs.String("listen", "127.0.0.1:4222", "client listen address host:port")
	fs.Int("http-port", 8222, "monitoring port (/varz, /connz, /healthz); 0 = off")
	fs.Bool("jetstream", false, "enable JetStream")
	fs.String("store-dir", "", "JetStream storage directory")
	fs.Int("max-payload", broker.DefaultMaxPayload, "max message size in bytes")
	fs.String("auth-file", "", "YAML/JSON file of users and roles (worker, coordinator, admin); see docs/auth.md")
	fs.String("worker-user", "worker", "name of the worker user created by --worker-password")
	fs.String("worker-password", "", "password of the worker user; prefer the FERRY_WORKER_PASSWORD env var")
	fs.String("coordinator-user", "coordinator", "name of the coordinator user created by --coordinator-password")
	fs.String("coordinator-password", "", "password of the coordinator user; prefer FERRY_COORDINATOR_PASSWORD")
	fs.Bool("allow-anonymous", false, "accept clients without credentials on a non-loopback --listen")
	fs.String("tls-cert", "", "server certificate (PEM); with --tls-key clients must use TLS")
	fs.String("tls-key", "", "server private key (PEM)")
	fs.String("tls-client-ca", "", "CA of client certificates: clients without one are refused (mutual TLS)")
	fs.String("server-name", "", "server name shown in logs, routes and monitoring (\"\" = generated)")
	fs.String("cluster-listen", "", "route listen address host:port; \"\" = not clustered")
	fs.String("cluster-name", "ferry", "cluster name, the same on every node")
	fs.String("routes", "", "seed routes, comma separated (nats-route://host:6222,...); a node may list itself")
	fs.String("cluster-advertise", "", "host:port other nodes use to reach this node's routes (\"\" = listen address)")
	fs.String("client-advertise", "", "host:port clients learn for this node from cluster gossip (\"\" = listen address)")
	return cmd
}

func runBroker(ctx context.Context, o *Options) error {
	log, err := o.logger()
	if err != nil {
		return err
	}
	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return invalid("listen", o.Listen, "want host:port")
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return invalid("listen", o.Listen, "bad port")
	}
	if o.MaxPayload <= 0 || o.MaxPayload > 64<<20 {
		return invalid("max_payload", o.MaxPayload, "must be between 1 and 64 MiB")
	}
	users, err := o.brokerUsers(log)
	if err != nil {
		return err
	}
	tlsOpts, err := o.brokerTLS()
	if err != nil {
		return err
	}
	switch {
	case len(users) == 0 && !loopback(host) && !o.AllowAnonymous:
		return invalid("listen", o.Listen, "a broker reachable beyond loopback must require auth: set worker_password and coordinator_password, or auth_file (or allow_anonymous=true); see docs/auth.md")
	case hasPasswords(users) && !tlsOpts.Enabled() && !loopback(host):
		log.Warn("auth without TLS: passwords cross the network in clear text; set tls_cert and tls_key")
	}
	cluster, err := o.cluster()
	if err != nil {
		return err
	}
	b, err := broker.Start(ctx, broker.Options{
		Host: host, Port: port, HTTPPort: o.HTTPPort, JetStream: o.JetStream, StoreDir: o.StoreDir,
		MaxPayload: int32(o.MaxPayload), Log: true, Users: users, TLS: tlsOpts,
		ServerName: o.ServerName, Cluster: cluster, ClientAdvertise: o.ClientAdvertise,
	})
	if err != nil {
		return brokerError(err)
	}
	auth, tls := describeAuth(users, tlsOpts)
	log.Info("broker ready", "url", b.URL(), "monitor", b.MonitorURL(), "nats_server", broker.Version(),
		"auth", auth, "tls", tls, "max_payload", o.MaxPayload,
		"server_name", o.ServerName, "cluster_listen", o.ClusterListen, "routes", o.Routes)
	<-ctx.Done()
	b.Shutdown()
	return nil
}

// cluster validates the cluster keys; no cluster_listen means standalone.
func (o *Options) cluster() (broker.Cluster, error) {
	if o.ClusterListen == "" {
		if o.Routes != "" {
			return broker.Cluster{}, invalid("routes", o.Routes, "needs cluster_listen")
		}
		return broker.Cluster{}, nil
	}
	host, portStr, err := net.SplitHostPort(o.ClusterListen)
	if err != nil {
		return broker.Cluster{}, invalid("cluster_listen", o.ClusterListen, "want host:port")
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return broker.Cluster{}, invalid("cluster_listen", o.ClusterListen, "bad port")
	}
	c := broker.Cluster{Name: o.ClusterName, Host: host, Port: port, Advertise: o.ClusterAdvertise}
	for _, r := range strings.Split(o.Routes, ",") {
		if r = strings.TrimSpace(r); r == "" {
			continue
		}
		u, err := url.Parse(r)
		if err != nil || u.Host == "" || (u.Scheme != "nats-route" && u.Scheme != "nats") {
			return broker.Cluster{}, invalid("routes", r, "want nats-route://host:port")
		}
		c.Routes = append(c.Routes, r)
	}
	return c, nil
}
