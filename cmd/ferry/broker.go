package main

import (
	"context"

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
			var o brokerOptions
			if err := load(cmd, &o); err != nil {
				return err
			}
			return runBroker(cmd.Context(), &o)
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

type brokerOptions struct {
	logOpts             `mapstructure:",squash"`
	Listen              string `mapstructure:"listen"`
	HTTPPort            int    `mapstructure:"http_port"`
	JetStream           bool   `mapstructure:"jetstream"`
	StoreDir            string `mapstructure:"store_dir"`
	MaxPayload          int    `mapstructure:"max_payload"`
	AuthFile            string `mapstructure:"auth_file"`
	WorkerUser          string `mapstructure:"worker_user"`
	WorkerPassword      string `mapstructure:"worker_password" secret:"true"`
	CoordinatorUser     string `mapstructure:"coordinator_user"`
	CoordinatorPassword string `mapstructure:"coordinator_password" secret:"true"`
	AllowAnonymous      bool   `mapstructure:"allow_anonymous"`
	TLSCert             string `mapstructure:"tls_cert"`
	TLSKey              string `mapstructure:"tls_key"`
	TLSClientCA         string `mapstructure:"tls_client_ca"`
	ServerName          string `mapstructure:"server_name"`
	ClusterListen       string `mapstructure:"cluster_listen"`
	ClusterName         string `mapstructure:"cluster_name"`
	Routes              string `mapstructure:"routes"`
	ClusterAdvertise    string `mapstructure:"cluster_advertise"`
	ClientAdvertise     string `mapstructure:"client_advertise"`
}

func runBroker(ctx context.Context, o *brokerOptions) error {
	log, err := o.logger()
	if err != nil {
		return err
	}
	if o.MaxPayload <= 0 {
		return invalid("max_payload", o.MaxPayload, "must be between 1 and 64 MiB")
	}
	return broker.Serve(ctx, broker.ServeConfig{
		Listen: o.Listen, HTTPPort: o.HTTPPort, JetStream: o.JetStream, StoreDir: o.StoreDir, MaxPayload: o.MaxPayload,
		AuthFile: o.AuthFile, WorkerUser: o.WorkerUser, WorkerPassword: o.WorkerPassword,
		CoordinatorUser: o.CoordinatorUser, CoordinatorPassword: o.CoordinatorPassword, AllowAnonymous: o.AllowAnonymous,
		TLS:        broker.TLS{Cert: o.TLSCert, Key: o.TLSKey, ClientCA: o.TLSClientCA},
		ServerName: o.ServerName, ClusterListen: o.ClusterListen, ClusterName: o.ClusterName, Routes: o.Routes,
		ClusterAdvertise: o.ClusterAdvertise, ClientAdvertise: o.ClientAdvertise,
	}, log)
}
