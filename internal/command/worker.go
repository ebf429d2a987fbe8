package command

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/internal/cli"
	"github.com/ferrylab/ferry/internal/list"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/worker"
	"github.com/ferrylab/ferry/workload"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
)

type workerOptions struct {
	logOpts     `mapstructure:",squash" flags:"root"`
	natsOpts    `mapstructure:",squash"`
	metricsOpts `mapstructure:",squash"`
	Procs       int `mapstructure:"procs" help:"worker processes to run (each one is a separate OS process)"`
	MaxDocBytes int `mapstructure:"max_doc_bytes" help:"reject batches with a document larger than this"`
	// Worker memory (docs/faults.md): results checked before compute, built workloads kept in an LRU.
	MaxResultBytes int64  `mapstructure:"max_result_bytes" help:"refuse (413, before computing) a batch whose result would be larger than this many bytes; 0 = the broker's max_payload"`
	CacheBytes     int64  `mapstructure:"cache_bytes" help:"bytes of built workloads (infer's weights) a worker keeps, least recently used evicted"`
	Dispatch       string `mapstructure:"dispatch" help:"request (request/reply), or request,jetstream to also pull batches from the FERRY_BATCHES stream"`
	ParentPID      int    `mapstructure:"parent_pid" hidden:"true" help:"exit when this process is no longer the parent (set by ferry run)"`
	execOpts       `mapstructure:",squash"`
}

func newCmdWorker() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Serve batches from NATS as the micro service ferry-worker",
		Long: `worker connects to NATS, registers as the micro service "ferry-worker"
(discoverable with $SRV.PING / nats micro ls) and computes the batches a
coordinator sends it, one at a time. --procs N starts N worker processes.
With --dispatch jetstream it also pulls batches from the FERRY_BATCHES
stream (durable dispatch). SIGTERM finishes the batch in hand, drains and exits.`,
		Example: `  ferry worker --nats-url nats://127.0.0.1:4222
  FERRY_NATS_URL=nats://broker:4222 ferry worker --procs 4 --log-format json
  ferry worker --nats-url nats://broker:4222 --dispatch jetstream`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var o workerOptions
			if err := cli.Load(cmd, &o); err != nil {
				return err
			}
			return runWorker(cmd.Context(), &o)
		},
	}
	cli.AddFlags(cmd.Flags(), workerOptions{natsOpts: defaultNATS, Procs: 1, MaxDocBytes: proto.DefaultMaxDocBytes, CacheBytes: workload.DefaultCacheBytes, Dispatch: coordinator.DispatchRequest, execOpts: defaultExec()})
	return cmd
}

func runWorker(ctx context.Context, o *workerOptions) error {
	log, err := o.logger()
	if err != nil {
		return err
	}
	if o.Procs < 1 {
		return cli.Invalid("procs", o.Procs, "must be at least 1")
	}
	dispatch, err := list.Parse(o.Dispatch, "dispatch", list.OneOf([]string{coordinator.DispatchRequest, coordinator.DispatchJetStream}))
	if err != nil {
		return err
	}
	if o.Procs > 1 {
		if o.MetricsAddr != "" {
			log.Warn("metrics_addr is ignored with procs > 1 (children cannot share one port): run one worker per process or container to scrape each", "metrics_addr", o.MetricsAddr)
		}
		args := []string{"worker", "--procs", "1", "--log-level", o.LogLevel, "--log-format", o.LogFormat, "--max-doc-bytes", strconv.Itoa(o.MaxDocBytes),
			"--max-result-bytes", strconv.FormatInt(o.MaxResultBytes, 10), "--cache-bytes", strconv.FormatInt(o.CacheBytes, 10),
			"--dispatch", o.Dispatch, "--metrics-addr=", "--parent-pid", strconv.Itoa(os.Getpid()), "--exec", o.Exec, "--exec-timeout", o.ExecTimeout.String()}
		err := fleet.Supervise(ctx, args, fleet.ChildEnv(o.NATSURL, o.auth()), o.Procs, log) // URL and credentials stay out of argv (ps)
		if exit := (*exec.ExitError)(nil); errors.As(err, &exit) && exit.ExitCode() == 2 {
			return fmt.Errorf("%w: %w; their error is above", cli.ErrInvalidConfig, err) // the children's configuration is ours
		}
		return err
	}
	stop, err := o.startExec("", 1) // started now, so no batch waits for it
	if err != nil {
		return err
	}
	defer stop()
	worker.OneCore()
	cfg := worker.Config{
		URL: o.NATSURL, Auth: o.auth(), Logger: log, ParentPID: o.ParentPID,
		Limits:      proto.Limits{MaxDocBytes: o.MaxDocBytes, MaxResultBytes: o.MaxResultBytes, CacheBytes: o.CacheBytes},
		BeforeBatch: worker.CrashHook(),
		JetStream:   slices.Contains(dispatch, coordinator.DispatchJetStream),
	}
	err = fleet.ServeWorker(ctx, cfg, o.MetricsAddr)
	if authFailed(err) {
		return fmt.Errorf("%w: %w", cli.ErrInvalidConfig, err)
	}
	return err
}

// authFailed reports whether err is the broker refusing our credentials or
// TLS refusing the connection: a configuration error (exit code 2), which
// restarting the worker cannot cure.
func authFailed(err error) bool {
	for _, e := range []error{nats.ErrAuthorization, nats.ErrAuthExpired, nats.ErrAuthRevoked, nats.ErrAccountAuthExpired,
		nats.ErrSecureConnRequired, nats.ErrSecureConnWanted, nats.ErrClientCertOrRootCAsRequired} {
		if errors.Is(err, e) {
			return true
		}
	}
	var verify *tls.CertificateVerificationError
	var alert tls.AlertError
	return errors.As(err, &verify) || errors.As(err, &alert)
}
