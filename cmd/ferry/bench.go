package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ferrylab/ferry/internal/machine"
	"github.com/ferrylab/ferry/internal/spawn"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/ferrylab/ferry/lab/floor"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/report"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
)

func newCmdBench() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure parts of ferry in isolation",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newCmdBenchTransport())
	return cmd
}

func newCmdBenchTransport() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "transport",
		Short: "Raw NATS echo round trip vs ferry's batch round trip, per payload size",
		Long: `transport starts an embedded NATS server on a loopback port, one ferry worker
process and one echo process (a plain NATS subscriber answering each request
with its own bytes), then, for each payload size, times round trips to the
echo and batch round trips through the worker with the noop workload (no
compute; request and reply shaped to the same size), one of each in turn,
one request in flight. It prints both medians and p99s, ferry over raw, and
ferry's median per stage. Then, with python3 on PATH (or --python PATH), it
times the same payloads through Python's ProcessPoolExecutor, one task at a
time, so the table also says what the same crossing costs a Python user on
this machine today (--python off skips it).`,
		Example: `  ferry bench transport
  ferry bench transport --sizes 64,64KiB,1MiB --roundtrips 1000
  ferry bench transport --codec msgpack --format json > transport.json
  ferry bench transport --python /usr/bin/python3.12 --sizes 64,1MiB`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := loadOptions(cmd)
			if err != nil {
				return err
			}
			return runBenchTransport(cmd.Context(), o, cmd)
		},
	}
	fs := cmd.Flags()
	fs.String("sizes", "", "payload sizes, comma separated, with optional B, KiB or MiB suffix (default 64 B to 4 MiB in powers of 4)")
	fs.Int("roundtrips", 200, "timed round trips per size, each side")
	fs.String("python", "auto", "Python ProcessPoolExecutor baseline: auto (python3 on PATH, skipped if none), off, or an interpreter path")
	fs.String("codec", proto.CodecPacked, "wire codec for ferry's side: "+strings.Join(proto.CodecNames(), ", "))
	fs.String("compress", "", `compress ferry's batches and results: "" (off) or s2`)
	fs.Int("max-doc-bytes", 1<<20, "largest document a decoder accepts")
	fs.StringP("format", "f", "text", "report format: "+strings.Join(report.Formats, ", "))
	fs.Int("max-payload", broker.DefaultMaxPayload, "embedded broker's max message size in bytes")
	return cmd
}

func runBenchTransport(ctx context.Context, o *Options, cmd *cobra.Command) error {
	log, err := o.logger()
	if err != nil {
		return err
	}
	sizes, err := parseSizes(o.Sizes)
	if err != nil {
		return invalid("sizes", o.Sizes, err.Error())
	}
	for _, s := range sizes {
		if s > o.MaxPayload-4096 {
			return invalid("sizes", o.Sizes, fmt.Sprintf("%d bytes does not fit max_payload %d with room for framing", s, o.MaxPayload))
		}
	}
	if o.RoundTrips < 1 {
		return invalid("roundtrips", o.RoundTrips, "must be at least 1")
	}
	codec, err := o.wireCodec(o.MaxPayload)
	if err != nil {
		return err
	}
	python, err := floor.FindPython(o.Python)
	switch {
	case errors.Is(err, floor.ErrNoPython):
		log.Info("no python3 on PATH: skipping the Python baseline")
	case err != nil:
		return invalid("python", o.Python, err.Error())
	}
	b, err := broker.Start(ctx, broker.Options{MaxPayload: int32(o.MaxPayload)})
	if err != nil {
		return err
	}
	defer b.Shutdown()
	pool, err := startWorkers(ctx, childEnv(b.URL(), natsconn.Auth{}), 1, log)
	if err != nil {
		return err
	}
	defer pool.Stop()
	echo, echoSubject, err := startEcho(ctx, childEnv(b.URL(), natsconn.Auth{}), log)
	if err != nil {
		return err
	}
	defer echo.Stop()
	nc, err := connect(b.URL(), "ferry-bench", natsconn.Auth{}, log, b.InProcess())
	if err != nil {
		return err
	}
	defer nc.Close()
	points, err := measureFloor(ctx, nc, codec, floor.Config{Sizes: sizes, RoundTrips: o.RoundTrips, EchoSubject: echoSubject})
	if err != nil {
		return err
	}
	cfg := map[string]any{"codec": o.Codec, "compress": o.Compress, "roundtrips": o.RoundTrips, "max_payload": o.MaxPayload}
	if python != "" {
		version, samples, err := floor.MeasurePython(ctx, python, sizes, o.RoundTrips)
		if err != nil {
			return err
		}
		for i := range points {
			points[i].Python = samples[i]
		}
		cfg["python_version"] = version
	}
	r := report.NewTransport(machine.Probe(), cfg, points)
	return report.WriteTransport(cmd.OutOrStdout(), r, o.Format)
}

// startWorkers spawns n `ferry worker` processes; env (childEnv) says where
// to connect and as whom.
func startWorkers(ctx context.Context, env []string, n int, log *slog.Logger) (*spawn.Pool, error) {
	return spawn.Start(ctx, spawn.Config{
		Args:    []string{"worker", "--log-level", "warn", "--parent-pid", strconv.Itoa(os.Getpid())},
		Env:     env,
		Procs:   n,
		Logger:  log,
		Restart: true,
	})
}

// startEcho spawns the `ferry echo` process that measures the floor; env
// (childEnv) says where to connect and as whom, with a worker's rights, as
// the echo subject is under ferry.work. It returns the echo with its
// subject: one of its own, since every echo on a shared broker would
// answer a common one.
func startEcho(ctx context.Context, env []string, log *slog.Logger) (*spawn.Pool, string, error) {
	subject := floor.EchoSubject + "." + strings.TrimPrefix(nats.NewInbox(), nats.InboxPrefix)
	p, err := spawn.Start(ctx, spawn.Config{
		Args:   []string{"echo", "--subject", subject, "--log-level", "warn", "--parent-pid", strconv.Itoa(os.Getpid())},
		Procs:  1,
		Env:    env,
		Logger: log,
	})
	return p, subject, err
}

// measureFloor waits for the echo responder and a worker, then measures the
// transport floor through a link to that worker.
func measureFloor(ctx context.Context, nc *nats.Conn, codec proto.Codec, cfg floor.Config) ([]floor.Point, error) {
	const within = 30 * time.Second
	if err := floor.WaitForEcho(ctx, nc, cfg.EchoSubject, within); err != nil {
		return nil, err
	}
	id, err := waitForWorker(ctx, nc, within)
	if err != nil {
		return nil, err
	}
	link, err := coordinator.NewLink(nc, codec, id)
	if err != nil {
		return nil, err
	}
	defer link.Close()
	return floor.Measure(ctx, nc, link, cfg)
}

// waitForWorker returns the ID of a worker that answers discovery.
func waitForWorker(ctx context.Context, nc *nats.Conn, within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	for {
		ids, err := coordinator.Discover(ctx, nc, 250*time.Millisecond, 1)
		if len(ids) > 0 {
			return ids[0], nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%w: none answered within %s (%v)", coordinator.ErrNoWorkers, within, err)
		}
	}
}

// parseSizes parses "64,1KiB,4MiB"; "" is floor.DefaultSizes().
func parseSizes(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return floor.DefaultSizes(), nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		mult := 1
		for _, u := range []struct {
			suffix string
			mult   int
		}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"K", 1 << 10}, {"M", 1 << 20}, {"B", 1}} {
			if strings.HasSuffix(f, u.suffix) {
				f, mult = strings.TrimSpace(strings.TrimSuffix(f, u.suffix)), u.mult
				break
			}
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive size", f)
		}
		out = append(out, n*mult)
	}
	return out, nil
}
