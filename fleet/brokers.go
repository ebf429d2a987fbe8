package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/ferrylab/ferry/internal/spawn"
	"github.com/ferrylab/ferry/proto"
	"github.com/nats-io/nats.go"
)

// MaxBrokerProcs is the most broker nodes a fleet runs as child processes.
const MaxBrokerProcs = 5

// brokerProcs are the fleet's brokers when they run as `ferry broker`
// child processes (Config.BrokerProcs), one node each, routed into one
// cluster on loopback when there are several.
//
// A child process is the only way to read a broker's CPU time apart from
// the coordinator's: in one Go process the broker's goroutines and the
// coordinator's share the runtime's threads, so neither per-thread clocks
// nor anything else separates them.
type brokerProcs struct {
	nodes []*spawn.Pool
	urls  []string // client URL of each node
	logs  *os.File // the nodes' log, read back when one does not come up
}

// startBrokerProcs starts n broker nodes with c's users and waits until
// each accepts the coordinator.
func startBrokerProcs(ctx context.Context, exe string, n, maxPayload int, c credentials, log *slog.Logger) (_ *brokerProcs, err error) {
	b := &brokerProcs{}
	defer func() {
		if err != nil {
			b.stop()
		}
	}()
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	if b.logs, err = os.CreateTemp("", "ferry-brokers-*.log"); err != nil {
		return nil, err
	}
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[n+i]))
	}
	// The passwords go in the environment (ps shows argv to everyone);
	// every other setting is a flag, which wins over any FERRY_ variable
	// this process was started with.
	env := []string{
		"FERRY_WORKER_USER=" + c.shared().User, "FERRY_WORKER_PASSWORD=" + c.shared().Password,
		"FERRY_COORDINATOR_USER=" + c.coordinator.User, "FERRY_COORDINATOR_PASSWORD=" + c.coordinator.Password,
	}
	for i := range n {
		args := []string{"broker", "--log-level", "warn", "--listen", fmt.Sprintf("127.0.0.1:%d", ports[i]), "--http-port", "0",
			"--max-payload", strconv.Itoa(maxPayload), "--server-name", fmt.Sprintf("ferry-n%d", i+1),
			"--auth-file=", "--tls-cert=", "--tls-key=", "--tls-client-ca=", "--jetstream=false", "--allow-anonymous=false"}
		if n > 1 {
			args = append(args, "--cluster-listen", fmt.Sprintf("127.0.0.1:%d", ports[n+i]), "--routes", strings.Join(routes, ","))
		}
		p, err := spawn.Start(ctx, spawn.Config{Exe: exe, Args: args, Env: env, Procs: 1, Logger: log, Stdout: b.logs})
		if err != nil {
			return nil, err
		}
		b.nodes = append(b.nodes, p)
		b.urls = append(b.urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	for i, url := range b.urls {
		if err := b.waitReady(ctx, i, url, c.coordinator); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// waitReady connects to node i until it answers, it exits, or 10 s pass.
func (b *brokerProcs) waitReady(ctx context.Context, i int, url string, a natsconn.Auth) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := natsconn.Connect(url, "ferry-fleet-probe", a, nil, nats.MaxReconnects(0))
		if err == nil {
			nc.Close()
			return nil
		}
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case len(b.nodes[i].PIDs()) == 0 || time.Now().After(deadline):
			return fmt.Errorf("fleet: broker node %d at %s did not come up: %w; its log: %s", i+1, url, err, b.tail())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// tail is the end of the nodes' log, for an error message.
func (b *brokerProcs) tail() string {
	data, err := os.ReadFile(b.logs.Name())
	if err != nil {
		return err.Error()
	}
	s := strings.TrimSpace(string(data))
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}

// pids lists the nodes' processes, first node first.
func (b *brokerProcs) pids() []int {
	var out []int
	for _, p := range b.nodes {
		out = append(out, p.PIDs()...)
	}
	return out
}

// stop terminates every node and removes the log. Safe on a partly
// started set.
func (b *brokerProcs) stop() {
	for _, p := range b.nodes {
		p.Stop()
	}
	if b.logs != nil {
		b.logs.Close()
		os.Remove(b.logs.Name())
	}
}

// freePorts returns n distinct free loopback ports: all are held open
// until the last is found, then released for the children to take.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("fleet: find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// startOnProcs is Start with the brokers as child processes: the nodes,
// then Workers worker processes spread over them in turn, the echo and the
// coordinator's connection on the first node.
func (f *Fleet) startOnProcs(ctx context.Context, cfg Config, creds credentials) (err error) {
	if f.procs, err = startBrokerProcs(ctx, cfg.Exe, cfg.BrokerProcs, cfg.MaxPayload, creds, cfg.Logger); err != nil {
		return err
	}
	n := len(f.procs.urls)
	for i, url := range f.procs.urls {
		procs := cfg.Workers / n
		if i < cfg.Workers%n {
			procs++
		}
		if procs == 0 {
			continue
		}
		p, err := startWorkers(ctx, cfg, f.workerEnv(url, creds.shared()), procs, f.shm)
		if err != nil {
			return err
		}
		f.workers = append(f.workers, p)
	}
	if cfg.Echo {
		if f.echo, err = startEcho(ctx, cfg.Exe, proto.EchoSubject, ChildEnv(f.procs.urls[0], creds.shared()), cfg.Logger); err != nil {
			return err
		}
	}
	if f.conn, err = natsconn.Connect(f.procs.urls[0], cfg.Name, creds.coordinator, cfg.Logger); err != nil {
		return err
	}
	cfg.Logger.Debug("local fleet", "brokers", f.procs.urls, "workers", cfg.Workers)
	return nil
}

// BrokerPIDs lists the broker processes, first node first; nil when the
// broker runs in this process (Config.BrokerProcs = 0).
func (f *Fleet) BrokerPIDs() []int {
	if f.procs == nil {
		return nil
	}
	return f.procs.pids()
}

// CoordinatorEnv is the environment a child process connects to the fleet
// with as a coordinator (ChildEnv): the i-th coordinator of a sharded job,
// on the broker nodes in turn.
func (f *Fleet) CoordinatorEnv(i int) []string {
	url := f.URL()
	if f.procs != nil {
		url = f.procs.urls[i%len(f.procs.urls)]
	}
	return ChildEnv(url, f.creds.coordinator)
}
