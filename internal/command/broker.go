package command

import (
	"context"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/internal/cli"
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
  FERRY_CLUSTER_PASSWORD=... ferry broker --listen 0.0.0.0:4222 --server-name n1 --cluster-listen 0.0.0.0:6222 \
      --routes nats-route://n1:6222,nats-route://n2:6222,nats-route://n3:6222`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var o brokerOptions
			if err := cli.Load(cmd, &o); err != nil {
				return err
			}
			return runBroker(cmd.Context(), &o)
		},
	}
	cli.AddFlags(cmd.Flags(), brokerOptions{Listen: "127.0.0.1:4222", HTTPPort: 8222, MaxPayload: broker.DefaultMaxPayload,
		WorkerUser: "worker", CoordinatorUser: "coordinator", ClusterName: "ferry", ClusterUser: "ferry-route"})
	return cmd
}

type brokerOptions struct {
	logOpts             `mapstructure:",squash" flags:"root"`
	Listen              string `mapstructure:"listen" help:"client listen address host:port"`
	HTTPPort            int    `mapstructure:"http_port" help:"monitoring port (/varz, /connz, /healthz); 0 = off"`
	JetStream           bool   `mapstructure:"jetstream" help:"enable JetStream"`
	StoreDir            string `mapstructure:"store_dir" help:"JetStream storage directory"`
	MaxPayload          int    `mapstructure:"max_payload" help:"max message size in bytes"`
	AuthFile            string `mapstructure:"auth_file" help:"YAML/JSON file of users and roles (worker, coordinator, admin); see docs/auth.md"`
	WorkerUser          string `mapstructure:"worker_user" help:"name of the worker user created by --worker-password"`
	WorkerPassword      string `mapstructure:"worker_password" secret:"true" help:"password of the worker user; prefer the FERRY_WORKER_PASSWORD env var"`
	CoordinatorUser     string `mapstructure:"coordinator_user" help:"name of the coordinator user created by --coordinator-password"`
	CoordinatorPassword string `mapstructure:"coordinator_password" secret:"true" help:"password of the coordinator user; prefer FERRY_COORDINATOR_PASSWORD"`
	AllowAnonymous      bool   `mapstructure:"allow_anonymous" help:"accept clients without credentials on a non-loopback --listen"`
	TLSCert             string `mapstructure:"tls_cert" help:"server certificate (PEM); with --tls-key clients must use TLS"`
	TLSKey              string `mapstructure:"tls_key" help:"server private key (PEM)"`
	TLSClientCA         string `mapstructure:"tls_client_ca" help:"CA of client certificates: clients without one are refused (mutual TLS)"`
	ServerName          string `mapstructure:"server_name" help:"server name shown in logs, routes and monitoring (\"\" = generated)"`
	ClusterListen       string `mapstructure:"cluster_listen" help:"route listen address host:port; \"\" = not clustered"`
	ClusterName         string `mapstructure:"cluster_name" help:"cluster name, the same on every node"`
	Routes              string `mapstructure:"routes" help:"seed routes, comma separated (nats-route://host:6222,...); a node may list itself"`
	ClusterAdvertise    string `mapstructure:"cluster_advertise" help:"host:port other nodes use to reach this node's routes (\"\" = listen address)"`
	ClientAdvertise     string `mapstructure:"client_advertise" help:"host:port clients learn for this node from cluster gossip (\"\" = listen address)"`
	ClusterUser         string `mapstructure:"cluster_user" help:"user routes log in as, the same on every node"`
	ClusterPassword     string `mapstructure:"cluster_password" secret:"true" help:"route password, the same on every node; required with a cluster_listen beyond loopback; prefer FERRY_CLUSTER_PASSWORD"`
}

func runBroker(ctx context.Context, o *brokerOptions) error {
	log, err := o.logger()
	if err != nil {
		return err
	}
	if o.MaxPayload <= 0 {
		return cli.Invalid("max_payload", o.MaxPayload, "must be between 1 and 64 MiB")
	}
	return broker.Serve(ctx, broker.ServeConfig{
		Listen: o.Listen, HTTPPort: o.HTTPPort, JetStream: o.JetStream, StoreDir: o.StoreDir, MaxPayload: o.MaxPayload,
		AuthFile: o.AuthFile, WorkerUser: o.WorkerUser, WorkerPassword: o.WorkerPassword,
		CoordinatorUser: o.CoordinatorUser, CoordinatorPassword: o.CoordinatorPassword, AllowAnonymous: o.AllowAnonymous,
		TLS:        broker.TLS{Cert: o.TLSCert, Key: o.TLSKey, ClientCA: o.TLSClientCA},
		ServerName: o.ServerName, ClusterListen: o.ClusterListen, ClusterName: o.ClusterName, Routes: o.Routes,
		ClusterAdvertise: o.ClusterAdvertise, ClientAdvertise: o.ClientAdvertise, ClusterUser: o.ClusterUser, ClusterPassword: o.ClusterPassword,
	}, log)
}
