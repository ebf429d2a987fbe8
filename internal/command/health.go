package command

import (
	"context"
	"fmt"
	"time"

	"github.com/ferrylab/ferry/internal/cli"
	"github.com/ferrylab/ferry/internal/health"
	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/spf13/cobra"
)

func newCmdHealth() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Exit 0 when a NATS server or an HTTP endpoint answers, 1 when not (container healthchecks)",
		Long: `health checks exactly what its flags name and exits 0 when every check
passes, 1 when one fails (with one line saying why on stderr). It exists so
healthchecks work in ferry's FROM-scratch image, which has no shell or curl.

  --nats-url URL   connect (with the FERRY_NATS_* credentials) and flush a PING
  --http URL       GET must answer 2xx (a worker's /healthz says whether it is
                   registered and connected)

FERRY_NATS_URL is deliberately not read: a worker's healthcheck asks about the
worker, not the broker.`,
		Example: `  ferry health --nats-url nats://127.0.0.1:4222
  ferry health --http http://127.0.0.1:9100/healthz
  ferry health --http http://127.0.0.1:8222/healthz --timeout 1s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var o healthOptions // for NATS credentials and TLS
			if err := cli.Load(cmd, &o); err != nil {
				return err
			}
			natsURL, _ := cmd.Flags().GetString("nats-url") // the flag only: not FERRY_NATS_URL
			return runHealth(cmd.Context(), cmd, &o, natsURL)
		},
	}
	cli.AddFlags(cmd.Flags(), healthOptions{Timeout: 3 * time.Second})
	return cmd
}

type healthOptions struct {
	logOpts  `mapstructure:",squash" flags:"root"`
	natsOpts `mapstructure:",squash"`
	HTTP     string        `mapstructure:"http" help:"URL whose GET must answer 2xx"`
	Timeout  time.Duration `mapstructure:"timeout" help:"time allowed for each check"`
}

func runHealth(ctx context.Context, cmd *cobra.Command, o *healthOptions, natsURL string) error {
	if natsURL == "" && o.HTTP == "" {
		return fmt.Errorf("%w: health needs --nats-url or --http", cli.ErrUsage)
	}
	if o.Timeout <= 0 {
		return cli.Invalid("timeout", o.Timeout, "must be positive")
	}
	if natsURL != "" {
		if err := health.NATS(natsURL, o.auth(), o.Timeout); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), "ok", natsconn.Redact(natsURL))
	}
	if o.HTTP != "" {
		if err := health.HTTP(ctx, o.HTTP, o.Timeout); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), "ok", o.HTTP)
	}
	return nil
}
