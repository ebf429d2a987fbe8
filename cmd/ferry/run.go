package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/ferrylab/ferry/internal/spawn"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/ferrylab/ferry/lab/floor"
	"github.com/ferrylab/ferry/report"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
)

func newCmdRun() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "All-in-one: embedded NATS, local worker processes, the job in every mode, one table",
		Long: `run starts an embedded NATS server on a loopback port, spawns one ferry worker
process per usable core, runs the job in each mode (serial, goroutines,
processes by default), checks that every mode produced identical results and
prints one table comparing them. With processes mode it also spawns an
echo process and, after the modes, measures the transport floor: a raw NATS
echo round trip next to ferry's own with empty compute, at 64 B and at the
run's mean message size. Worker processes never outlive run.`,
		Example: `  ferry run
  ferry run --modes serial,goroutines,gil,codec,processes --docs 50000
  ferry run --workload chunk --input ./notes --out chunks.jsonl
  ferry run --codec msgpack --format json > report.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := loadOptions(cmd)
			if err != nil {
				return err
			}
			return runRun(cmd.Context(), o, cmd)
		},
	}
	fs := cmd.Flags()
	fs.String("modes", "serial,goroutines,processes", "modes to run, in order: "+fmt.Sprint(coordinator.Modes()))
	addJobFlags(fs)
	fs.Int("max-payload", broker.DefaultMaxPayload, "embedded broker's max message size in bytes")
	return cmd
}

func runRun(ctx context.Context, o *Options, cmd *cobra.Command) error {
	env, modes, err := newJobEnv(o, cmd)
	if err != nil {
		return err
	}
	cfg, log := env.cfg, env.log
	env.expect = cfg.Workers
	if slices.Contains(modes, coordinator.ModeProcesses) {
		if o.MaxPayload <= 0 || o.MaxPayload > 64<<20 {
			return invalid("max_payload", o.MaxPayload, "must be between 1 and 64 MiB")
		}
		creds := newRunCredentials()
		bo := broker.Options{MaxPayload: int32(o.MaxPayload), Users: creds.users()}
		if slices.Contains(env.dispatch, coordinator.DispatchJetStream) {
			dir, err := os.MkdirTemp("", "ferry-jetstream-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			bo.JetStream, bo.StoreDir = true, dir
		}
		// The broker outlives an interrupt (ctx) so batches in flight can
		// still be answered during stop_grace; the deferred Shutdown ends it.
		b, err := broker.Start(context.WithoutCancel(ctx), bo)
		if err != nil {
			return err
		}
		defer b.Shutdown()
		pool, err := spawn.Start(ctx, spawn.Config{
			Args:    []string{"worker", "--log-level", "warn", "--parent-pid", strconv.Itoa(osGetpid()), "--dispatch", o.Dispatch},
			Env:     append(childEnv(b.URL(), creds.worker), spinEnv(o.Workload)...), // not argv: ps shows argv to everyone
			Procs:   cfg.Workers,
			Logger:  log,
			Restart: true,
		})
		if err != nil {
			return err
		}
		defer pool.Stop() // shutdown order: workers first (they drain), then the broker
		env.workerPIDs = pool.PIDs
		echo, echoSubject, err := startEcho(ctx, childEnv(b.URL(), creds.worker), log)
		if err != nil {
			return err
		}
		defer echo.Stop()
		nc, err := connect(b.URL(), "ferry-coordinator", creds.coordinator, log, b.InProcess())
		if err != nil {
			return err
		}
		defer nc.Close()
		env.nc = nc
		env.floor = func(ctx context.Context, st *coordinator.Stats) ([]report.FloorPoint, error) {
			// The broker runs in this process: its CPU and the echo's are
			// what a raw NATS batch costs.
			return runFloor(ctx, nc, o, echoSubject, st, cpuClock{pids: echo.PIDs}.now)
		}
		log.Debug("embedded broker", "url", b.URL(), "workers", cfg.Workers)
	}
	return runModes(ctx, env, modes)
}

// runFloor measures the transport floor after a processes run, at 64 B and
// at the run's mean message size (batch and result bytes averaged), 500
// round trips each way: about half a second for embed batches. With a clock
// that reads the broker's CPU as well as the echo's (an embedded broker), it
// also measures the CPU a raw echo of the mean size costs, with as many in
// flight as each worker has batches.
func runFloor(ctx context.Context, nc *nats.Conn, o *Options, echoSubject string, st *coordinator.Stats, clock floor.CPUClock) ([]report.FloorPoint, error) {
	codec, err := o.wireCodec(int(nc.MaxPayload()))
	if err != nil {
		return nil, err
	}
	sizes := []int{64}
	typical := int((st.BytesOut + st.BytesIn) / (2 * st.Batches))
	if typical = min(typical, int(nc.MaxPayload())-4096); typical > 64 {
		sizes = append(sizes, typical)
	}
	points, err := measureFloor(ctx, nc, codec, floor.Config{Sizes: sizes, RoundTrips: 500, EchoSubject: echoSubject})
	if err != nil {
		return nil, err
	}
	fp := report.FloorPoints(points)
	if clock != nil && len(sizes) > 1 {
		const roundTrips = 2000 // enough CPU for /proc's 10 ms ticks to be a few percent
		cost, err := floor.MeasureCPU(ctx, nc, echoSubject, typical, o.InFlight, roundTrips, 10*time.Second, clock)
		if err != nil {
			return fp, err
		}
		fp[len(fp)-1].SetCPU(cost)
	}
	return fp, nil
}

// connect opens the coordinator's NATS connection; an unreachable URL is a
// configuration error naming the key. extra adds options, such as an embedded
// broker's InProcess.
func connect(url, name string, a natsconn.Auth, log *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	opts, err := natsconn.Options(name, a, log)
	if err != nil {
		return nil, invalid("nats_url", natsconn.Redact(url), err.Error())
	}
	nc, err := nats.Connect(url, append(opts, extra...)...)
	if err != nil {
		return nil, invalid("nats_url", natsconn.Redact(url), "cannot connect: "+err.Error())
	}
	return nc, nil
}
