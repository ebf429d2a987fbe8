package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/nats-io/nats.go"
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
			if err := load(cmd, &o); err != nil {
				return err
			}
			fs := cmd.Flags()
			natsURL, _ := fs.GetString("nats-url")
			httpURL, _ := fs.GetString("http")
			timeout, _ := fs.GetDuration("timeout")
			return runHealth(cmd.Context(), &o, natsURL, httpURL, timeout, cmd)
		},
	}
	fs := cmd.Flags()
	addNATSFlags(fs, "")
	fs.String("http", "", "URL whose GET must answer 2xx")
	fs.Duration("timeout", 3*time.Second, "time allowed for each check")
	return cmd
}

type healthOptions struct {
	logOpts  `mapstructure:",squash"`
	natsOpts `mapstructure:",squash"`
}

func runHealth(ctx context.Context, o *healthOptions, natsURL, httpURL string, timeout time.Duration, cmd *cobra.Command) error {
	if natsURL == "" && httpURL == "" {
		return fmt.Errorf("%w: health needs --nats-url or --http", errUsage)
	}
	if timeout <= 0 {
		return invalid("timeout", timeout, "must be positive")
	}
	if natsURL != "" {
		if err := checkNATS(natsURL, o.auth(), timeout); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), "ok", natsconn.Redact(natsURL))
	}
	if httpURL != "" {
		if err := checkHTTP(ctx, httpURL, timeout); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), "ok", httpURL)
	}
	return nil
}

func checkNATS(url string, auth natsconn.Auth, timeout time.Duration) error {
	opts, err := natsconn.Options("ferry-health", auth, nil)
	if err != nil {
		return invalid("nats_url", natsconn.Redact(url), err.Error())
	}
	nc, err := nats.Connect(url, append(opts, nats.Timeout(timeout), nats.NoReconnect())...)
	if err != nil {
		return fmt.Errorf("nats %s: %w", natsconn.Redact(url), err)
	}
	defer nc.Close()
	if err := nc.FlushTimeout(timeout); err != nil {
		return fmt.Errorf("nats %s: flush: %w", natsconn.Redact(url), err)
	}
	return nil
}

func checkHTTP(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return invalid("http", url, err.Error())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("http %s: %w", url, errors.Unwrap(err))
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("http %s: %s", url, resp.Status)
	}
	return nil
}
