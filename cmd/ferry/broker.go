package main

import (
	"context"
	"net"
	"strconv"

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
  ferry broker --listen 0.0.0.0:4222 --auth-file users.yaml --tls-cert server.pem --tls-key server-key.pem`,
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
	b, err := broker.Start(ctx, broker.Options{
		Host: host, Port: port, HTTPPort: o.HTTPPort, JetStream: o.JetStream, StoreDir: o.StoreDir,
		MaxPayload: int32(o.MaxPayload), Log: true, Users: users, TLS: tlsOpts,
	})
	if err != nil {
		return brokerError(err)
	}
	auth, tls := describeAuth(users, tlsOpts)
	log.Info("broker ready", "url", b.URL(), "monitor", b.MonitorURL(), "nats_server", broker.Version(),
		"auth", auth, "tls", tls, "max_payload", o.MaxPayload)
	<-ctx.Done()
	b.Shutdown()
	return nil
}
