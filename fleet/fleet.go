// Package fleet starts a local fleet: an embedded NATS broker on a loopback
// port with throwaway per-run credentials, N `ferry worker` processes of
// this executable, optionally the echo process the transport floor needs,
// and the coordinator's in-process connection to the broker. Close stops
// them in the one order that loses nothing.
//
// It is the only place that brings a local fleet up (ferry run, sweep,
// pipeline and bench transport all call Start), and it runs the fleet's
// processes: ServeWorker is one worker's life, Supervise keeps N of them.
// It runs no jobs (the coordinator does) and measures nothing but CPU
// time (CPUClock).
package fleet

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/internal/cpuprof"
	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/ferrylab/ferry/internal/spawn"
	"github.com/ferrylab/ferry/metrics"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/shm"
	"github.com/ferrylab/ferry/worker"
	"github.com/ferrylab/ferry/workload"
	"github.com/nats-io/nats.go"
)

// ErrInvalidConfig is wrapped by every error of Config.Validate.
var ErrInvalidConfig = errors.New("fleet: invalid configuration")

// MaxPayloadLimit is the largest max_payload the embedded broker takes.
const MaxPayloadLimit = 64 << 20

// Config configures a local fleet. The zero value of every field is its default.
type Config struct {
	// Workers is the number of worker processes; 0 = none (a fleet with
	// only a broker and, with Echo, the echo process).
	Workers int
	// MaxPayload is the broker's max message size in bytes; 0 =
	// broker.DefaultMaxPayload. At most MaxPayloadLimit.
	MaxPayload int
	// JetStream enables JetStream on the broker, with its store in a
	// temporary folder removed by Close, and has workers serve the work
	// queue too (dispatch=jetstream). Default off.
	JetStream bool
	// Echo also starts the echo process that answers raw NATS requests on
	// EchoSubject, for the transport floor. Default off.
	Echo bool
	// Workload, when "spin", pins the workers' spin calibration to this
	// process's, so every mode spins the same iterations per document.
	Workload string
	// Exec is the program the workers run for the exec workload (their
	// --exec); "" = none. ExecTimeout is their --exec-timeout; 0 = theirs.
	Exec        string
	ExecTimeout time.Duration
	// BrokerProcs, when set, runs the broker as that many `ferry broker`
	// child processes instead of in this process: 1 is one broker, more a
	// cluster routed on loopback (3 is the compose cluster's shape). Each
	// node's CPU time is then its own (BrokerPIDs). Workers attach to the
	// nodes in turn; the coordinator connects to the first over loopback
	// TCP. 0 = embedded (default). Not with JetStream. The broker command
	// takes one worker login, so these workers and the echo share it.
	BrokerProcs int
	// Shm gives each worker process a shared-memory data plane besides
	// NATS (--data-plane shm): a memfd region of 2 x ShmPairs slots of
	// MaxPayload bytes and a descriptor socket, passed as inherited files.
	// Registry then maps workers to their endpoints. Linux only; ignored
	// elsewhere. Default off.
	Shm bool
	// ShmPairs is the slot pairs per worker, the batches a worker can have
	// in flight over shared memory; 0 = ShmPairs (2).
	ShmPairs int
	// Exe is the ferry binary the fleet's processes run; "" =
	// this executable. Tests of packages other than cmd/ferry set it to a
	// built ferry (childtest.BuildFerry).
	Exe string
	// Name is the coordinator connection's name; "" = "ferry-coordinator".
	Name string
	// Logger receives the fleet's log; nil = discard.
	Logger *slog.Logger
}

// Validate checks c, naming the key at fault.
func (c Config) Validate() error {
	switch {
	case c.Workers < 0:
		return fmt.Errorf("%w: workers=%d: must be positive", ErrInvalidConfig, c.Workers)
	case c.MaxPayload < 0 || c.MaxPayload > MaxPayloadLimit:
		return fmt.Errorf("%w: max_payload=%d: must be between 1 and 64 MiB", ErrInvalidConfig, c.MaxPayload)
	case c.BrokerProcs < 0 || c.BrokerProcs > MaxBrokerProcs:
		return fmt.Errorf("%w: broker_procs=%d: must be between 0 (embedded) and %d", ErrInvalidConfig, c.BrokerProcs, MaxBrokerProcs)
	case c.BrokerProcs > 0 && c.JetStream:
		return fmt.Errorf("%w: broker_procs=%d: JetStream needs the embedded broker", ErrInvalidConfig, c.BrokerProcs)
	}
	return nil
}

// WithDefaults fills the zero fields of c with their defaults.
func (c Config) WithDefaults() Config {
	if c.MaxPayload == 0 {
		c.MaxPayload = broker.DefaultMaxPayload
	}
	if c.Name == "" {
		c.Name = "ferry-coordinator"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Fleet is a running local fleet.
type Fleet struct {
	broker   *broker.Broker
	procs    *brokerProcs // the brokers, when they are child processes
	conn     *nats.Conn
	workers  []*spawn.Pool // one process each: each has a login of its own
	echo     *Echo
	storeDir string
	profDir  string // where workers write CPU recordings (cpuprof)
	profiled []int  // the workers StartProfiles asked to record
	creds    credentials
	shm      *shmPlane // nil unless Config.Shm
}

// Start brings a fleet up and returns once the workers are started (not
// necessarily attached: the coordinator waits for them) and the
// coordinator's connection is open. On error everything started is stopped.
func Start(ctx context.Context, cfg Config) (_ *Fleet, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	f := &Fleet{}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	creds := newCredentials(cfg.Workers)
	f.creds = creds
	if f.profDir, err = os.MkdirTemp("", "ferry-cpuprof-"); err != nil {
		return nil, err
	}
	if cfg.Shm && shm.Supported {
		if f.shm, err = newShmPlane(cfg); err != nil {
			return nil, err
		}
	}
	if cfg.BrokerProcs > 0 {
		if err = f.startOnProcs(ctx, cfg, creds); err != nil {
			return nil, err
		}
		return f, nil
	}
	bo := broker.Options{MaxPayload: int32(cfg.MaxPayload), Users: creds.users()}
	if cfg.JetStream {
		if f.storeDir, err = os.MkdirTemp("", "ferry-jetstream-"); err != nil {
			return nil, err
		}
		bo.JetStream, bo.StoreDir = true, f.storeDir
	}
	// The broker outlives an interrupt (ctx) so batches in flight can
	// still be answered during the coordinator's stop grace; Close ends it.
	if f.broker, err = broker.Start(context.WithoutCancel(ctx), bo); err != nil {
		return nil, err
	}
	for _, w := range creds.workers { // one login per worker: it reads only its own batches
		// Credentials in the environment, not argv: ps shows argv to everyone.
		p, err := startWorkers(ctx, cfg, f.workerEnv(f.broker.URL(), w), 1, f.shm)
		if err != nil {
			return nil, err
		}
		f.workers = append(f.workers, p)
	}
	if cfg.Echo {
		if f.echo, err = startEcho(ctx, cfg.Exe, proto.EchoSubject, ChildEnv(f.broker.URL(), creds.echo), cfg.Logger); err != nil {
			return nil, err
		}
	}
	if f.conn, err = natsconn.Connect(f.broker.URL(), cfg.Name, creds.coordinator, cfg.Logger, f.broker.InProcess()); err != nil {
		return nil, err
	}
	cfg.Logger.Debug("local fleet", "url", f.broker.URL(), "workers", cfg.Workers, "jetstream", cfg.JetStream)
	return f, nil
}

// Conn is the coordinator's connection to the fleet's broker, in-process
// (no loopback TCP on this side of the hop). Close closes it.
func (f *Fleet) Conn() *nats.Conn { return f.conn }

// startWorkers starts procs worker processes of cfg's fleet, connecting
// with env (ChildEnv); they are restarted if they exit.
func startWorkers(ctx context.Context, cfg Config, env []string, procs int, plane *shmPlane) (*spawn.Pool, error) {
	args := []string{"worker", "--log-level", "warn", "--parent-pid", strconv.Itoa(os.Getpid())}
	if cfg.JetStream {
		args = append(args, "--dispatch", "request,jetstream")
	}
	if cfg.Exec != "" {
		args = append(args, "--exec", cfg.Exec)
	}
	if cfg.ExecTimeout > 0 {
		args = append(args, "--exec-timeout", cfg.ExecTimeout.String())
	}
	sc := spawn.Config{
		Exe:     cfg.Exe,
		Args:    args,
		Env:     append(env, spinEnv(cfg.Workload)...),
		Procs:   procs,
		Logger:  cfg.Logger,
		Restart: true,
	}
	if plane != nil {
		sc.Files = plane.files
	}
	return spawn.Start(ctx, sc)
}

// Shm maps the workers' micro service IDs to their shared-memory
// endpoints; nil unless Config.Shm (on Linux).
func (f *Fleet) Shm() *shm.Registry {
	if f.shm == nil {
		return nil
	}
	return f.shm.reg
}

// URL is the broker's client URL.
func (f *Fleet) URL() string {
	if f.procs != nil {
		return f.procs.urls[0]
	}
	return f.broker.URL()
}

// WorkerPIDs lists the running worker processes.
func (f *Fleet) WorkerPIDs() []int {
	var pids []int
	for _, p := range f.workers {
		pids = append(pids, p.PIDs()...)
	}
	return pids
}

// Echo is the fleet's echo process; nil unless Config.Echo.
func (f *Fleet) Echo() *Echo { return f.echo }

// Close stops the fleet. Shutdown order: the coordinator's connection, the
// echo, the workers (SIGTERM: they drain their batch in flight), then the
// broker, then its store. Safe on a partly started fleet.
func (f *Fleet) Close() {
	if f.conn != nil {
		f.conn.Close()
	}
	if f.echo != nil {
		f.echo.Stop()
	}
	var wg sync.WaitGroup // the workers drain at once, not one after another
	for _, p := range f.workers {
		wg.Go(p.Stop)
	}
	wg.Wait()
	if f.shm != nil { // after the workers: their ends are gone, ours unmap
		f.shm.close()
	}
	if f.broker != nil {
		f.broker.Shutdown()
	}
	if f.procs != nil {
		f.procs.stop()
	}
	if f.storeDir != "" {
		os.RemoveAll(f.storeDir)
	}
	if f.profDir != "" {
		os.RemoveAll(f.profDir)
	}
}

// Echo is a running `ferry echo` process: a plain NATS subscriber that
// answers each request on Subject with its own bytes.
type Echo struct {
	pool    *spawn.Pool
	Subject string // one of its own: every echo on a shared broker would answer a common one
}

// StartEcho spawns the echo process; env (ChildEnv) says where to connect
// and as whom: a login with a worker's rights named "echo", as the subject,
// ferry.work.echo.<random>, is under that login's work subjects.
func StartEcho(ctx context.Context, env []string, log *slog.Logger) (*Echo, error) {
	return startEcho(ctx, "", proto.EchoSubject, env, log)
}

// StartEchoUnder is StartEcho answering on a subject under prefix, one its
// login may serve: proto.CoordinatorEchoSubject(login) for an echo that logs
// in as a coordinator of an external broker.
func StartEchoUnder(ctx context.Context, prefix string, env []string, log *slog.Logger) (*Echo, error) {
	return startEcho(ctx, "", prefix, env, log)
}

// startEcho is StartEcho running exe ("" = this executable) under prefix.
func startEcho(ctx context.Context, exe, prefix string, env []string, log *slog.Logger) (*Echo, error) {
	subject := prefix + "." + strings.TrimPrefix(nats.NewInbox(), nats.InboxPrefix)
	p, err := spawn.Start(ctx, spawn.Config{
		Exe:    exe,
		Args:   []string{"echo", "--subject", subject, "--log-level", "warn", "--parent-pid", strconv.Itoa(os.Getpid())},
		Procs:  1,
		Env:    env,
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	return &Echo{pool: p, Subject: subject}, nil
}

// PIDs lists the echo process.
func (e *Echo) PIDs() []int { return e.pool.PIDs() }

// Stop terminates the echo process.
func (e *Echo) Stop() { e.pool.Stop() }

// ChildEnv passes a NATS URL and credentials to a child process through its
// environment: argv is readable by every user (ps), /proc/PID/environ only
// by the owner. Empty values override whatever the parent's environment
// held, so a child uses exactly these settings.
func ChildEnv(url string, a natsconn.Auth) []string {
	return []string{
		"FERRY_NATS_URL=" + url,
		"FERRY_NATS_USER=" + a.User,
		"FERRY_NATS_PASSWORD=" + a.Password,
		"FERRY_NATS_TOKEN=" + a.Token,
		"FERRY_NATS_NKEY_SEED=" + a.NKeySeed,
		"FERRY_NATS_CREDS=" + a.CredsFile,
		"FERRY_NATS_TLS_CA=" + a.TLSCA,
		"FERRY_NATS_TLS_CERT=" + a.TLSCert,
		"FERRY_NATS_TLS_KEY=" + a.TLSKey,
	}
}

// credentials are one fleet's throwaway users for its embedded broker: a
// login per worker process (worker-1, worker-2, ...), so no worker can read
// or answer another's batches; one for the echo (a worker's rights); one
// for the coordinator. Nothing else on the machine can join the run
// without reading the coordinator's memory or environment.
type credentials struct {
	workers           []natsconn.Auth
	echo, coordinator natsconn.Auth
}

func newCredentials(workers int) credentials {
	c := credentials{
		echo:        natsconn.Auth{User: echoUser, Password: rand.Text()},
		coordinator: natsconn.Auth{User: "coordinator", Password: rand.Text()},
	}
	for i := range workers {
		c.workers = append(c.workers, natsconn.Auth{User: fmt.Sprintf("worker-%d", i+1), Password: rand.Text()})
	}
	return c
}

// echoUser is the echo's login: its subject is under ferry.work.echo.
var echoUser = strings.TrimPrefix(proto.EchoSubject, proto.WorkSubjectPrefix+".")

func (c credentials) users() []broker.User {
	users := []broker.User{
		{Name: c.echo.User, Password: c.echo.Password, Role: broker.RoleWorker},
		{Name: c.coordinator.User, Password: c.coordinator.Password, Role: broker.RoleCoordinator},
	}
	for _, w := range c.workers {
		users = append(users, broker.User{Name: w.User, Password: w.Password, Role: broker.RoleWorker})
	}
	return users
}

// spinEnv pins the spin calibration of the workers started here to this
// process's (see workload.SpinRateEnv); nil for other workloads.
func spinEnv(name string) []string {
	if name != "spin" {
		return nil
	}
	return []string{workload.SpinRateEnv + "=" + strconv.FormatFloat(workload.SpinIterationsPerUs(), 'g', -1, 64)}
}

// Supervise runs n child processes of this executable with args (a
// `worker --procs 1 ...` line, say) and env until ctx is done, restarting
// any that exit, then stops them all. Children that keep failing at start
// (a wrong password) make it stop them all and return why (spawn.ErrGaveUp).
func Supervise(ctx context.Context, args, env []string, n int, log *slog.Logger) error {
	pool, err := spawn.Start(ctx, spawn.Config{Args: args, Env: env, Procs: n, Logger: log, Restart: true})
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-pool.Done():
	}
	pool.Stop()
	return pool.Err()
}

// ServeWorker runs this process as one worker (`ferry worker`): the
// worker, and its Prometheus metrics on metricsAddr ("" = none), until ctx
// is done or the parent process goes. Those two ends are not errors.
func ServeWorker(ctx context.Context, cfg worker.Config, metricsAddr string) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Shm == nil {
		var err error
		if cfg.Shm, err = worker.ShmFromEnv(); err != nil {
			log.Warn("no shared memory; serving over NATS only", "err", err)
		}
	}
	var m *metrics.Worker
	if metricsAddr != "" {
		m = metrics.NewWorker(time.Now())
		cfg.Observe = m.Observe
	}
	var handler *cpuprof.Stopwatch // the batch handler's own CPU, for the breakdown
	if dir := os.Getenv(cpuprof.EnvDir); dir != "" {
		handler = timeHandler(&cfg)
		cpuprof.Serve(ctx, dir, handler) // before the worker registers: see Fleet.StartProfiles
	}
	w, err := worker.New(cfg)
	if err != nil {
		return err
	}
	if m != nil {
		srv, err := metrics.Serve(metricsAddr, m.Registry, w.Ready, log)
		if err != nil {
			return fmt.Errorf("%w: metrics_addr=%s: %v", ErrInvalidConfig, metricsAddr, err)
		}
		defer srv.Close()
		log.Info("metrics", "addr", srv.Addr().String())
	}
	err = w.Run(ctx)
	if errors.Is(err, worker.ErrParentGone) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// shared is the one worker login of a fleet on broker processes: the
// broker command takes one (worker_user, worker_password), so every worker
// and the echo log in as it.
func (c credentials) shared() natsconn.Auth { return c.echo }
