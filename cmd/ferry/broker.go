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
		Example: `  ferry broker                                  # 127.0.0.1:4222, monitoring on 8222
  ferry broker --listen 0.0.0.0:4222 --http-port 8222 --jetstream --store-dir /data`,
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
	b, err := broker.Start(ctx, broker.Options{
		Host: host, Port: port, HTTPPort: o.HTTPPort, JetStream: o.JetStream, StoreDir: o.StoreDir,
		MaxPayload: int32(o.MaxPayload), Log: true,
	})
	if err != nil {
		return err
	}
	log.Info("broker ready", "url", b.URL(), "monitor", b.MonitorURL(), "nats_server", broker.Version())
	<-ctx.Done()
	b.Shutdown()
	return nil
}
