// Package spawn supervises child processes of ferry: it starts them with
// the parent-death signal, restarts them when asked, and terminates and
// reaps every one on Stop. It knows nothing of what the children do (worker
// processes, the echo of the transport floor, a test's role).
package spawn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/ferrylab/ferry/internal/procattr"
)

// Config configures a pool of child OS processes.
type Config struct {
	Exe    string       // the ferry binary; "" = this executable
	Args   []string     // arguments of each child, e.g. worker --nats-url URL
	Procs  int          // number of children; must be >= 1
	Env    []string     // extra environment for children
	Logger *slog.Logger // nil = discard
	// Restart respawns a child that exits while the pool runs (a crashed or
	// killed worker costs a retry, not capacity). Default off.
	Restart bool
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL; 0 = 10s.
	StopGrace time.Duration
	Stdout    *os.File // children's stdout/stderr; nil = this process's stderr
	// MaxStartFailures is how many times in a row a child may exit by
	// itself within StartupWindow of being started before the pool gives
	// up (Done, Err): a wrong password or a bad flag fails every restart
	// alike. Children killed by a signal do not count. 0 = 8 (about 6 s of
	// pauses: restarts back off from 50 ms, doubling, up to 5 s).
	MaxStartFailures int
	// Files, when set, is called before each start (restarts too) for the
	// files the child inherits (exec.Cmd.ExtraFiles: fd 3 on) and the
	// environment naming them; the pool closes its copies of the files
	// once the child is started. A restarted child gets new ones, so
	// whatever the old one held (shared memory) goes with it. nil = none.
	Files func() (files []*os.File, env []string, err error)
	// StartupWindow is how long a child must live for its exit not to count
	// as a failure to start; 0 = 2s.
	StartupWindow time.Duration
}

// ErrGaveUp is wrapped by Err when children kept failing at start.
var ErrGaveUp = errors.New("worker pool: giving up")

// Restart pauses: from restartFirst, doubling for each failure to start in
// a row, up to restartMax; each ±20% so children that fail together do
// not restart together.
const (
	restartFirst = 50 * time.Millisecond
	restartMax   = 5 * time.Second
)

// newRestartBackoff is one slot's pauses between restarts: cenkalti/backoff,
// a well-kept exponential backoff with jitter, never ending by itself.
func newRestartBackoff() *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(restartFirst),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.2),
		backoff.WithMaxInterval(restartMax),
		backoff.WithMaxElapsedTime(0),
	)
}

// slot is one child's place in the pool across its restarts.
type slot struct {
	id       int
	pause    *backoff.ExponentialBackOff
	failures int // exits within StartupWindow in a row
}

// Pool owns worker child processes: it starts them, restarts them if asked,
// and on Stop terminates and reaps every one. Children are also started
// with the kernel's parent-death signal (Linux) and told our PID, so they
// exit even when this process is SIGKILLed.
type Pool struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	procs    map[int]*exec.Cmd
	restarts int
	gaveUp   chan struct{} // closed with err set when children keep failing at start
	err      error
}

// Start starts cfg.Procs children and returns once they are started
// (not necessarily connected).
func Start(ctx context.Context, cfg Config) (*Pool, error) {
	if cfg.Procs < 1 {
		return nil, fmt.Errorf("worker pool: procs=%d must be at least 1", cfg.Procs)
	}
	if cfg.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("worker pool: find executable: %w", err)
		}
		cfg.Exe = exe
	}
	if cfg.StopGrace == 0 {
		cfg.StopGrace = 10 * time.Second
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stderr
	}
	if cfg.MaxStartFailures <= 0 {
		cfg.MaxStartFailures = 8
	}
	if cfg.StartupWindow <= 0 {
		cfg.StartupWindow = 2 * time.Second
	}
	p := &Pool{cfg: cfg, log: cfg.Logger, procs: map[int]*exec.Cmd{}, gaveUp: make(chan struct{})}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.ctx, p.cancel = context.WithCancel(ctx)
	for i := range cfg.Procs {
		if err := p.start(&slot{id: i, pause: newRestartBackoff()}); err != nil {
			p.Stop()
			return nil, err
		}
	}
	return p, nil
}

func (p *Pool) start(sl *slot) error {
	cmd := exec.Command(p.cfg.Exe, p.cfg.Args...)
	cmd.Env = append(append(os.Environ(), p.cfg.Env...), fmt.Sprintf("FERRY_PARENT_PID=%d", os.Getpid()))
	cmd.Stdout, cmd.Stderr = p.cfg.Stdout, p.cfg.Stdout
	cmd.SysProcAttr = procattr.Child()
	if p.cfg.Files != nil {
		files, env, err := p.cfg.Files()
		if err != nil {
			return fmt.Errorf("worker pool: files for %s: %w", p.cfg.Exe, err)
		}
		cmd.ExtraFiles, cmd.Env = files, append(cmd.Env, env...)
		defer func() { // the child has its own copies
			for _, f := range files {
				f.Close()
			}
		}()
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("worker pool: start %s: %w", p.cfg.Exe, err)
	}
	started := time.Now()
	p.mu.Lock()
	p.procs[cmd.Process.Pid] = cmd
	p.mu.Unlock()
	p.wg.Add(1)
	go func() { // owned by the pool: reaps the child; Stop waits for it
		defer p.wg.Done()
		err := cmd.Wait()
		p.mu.Lock()
		delete(p.procs, cmd.Process.Pid)
		p.mu.Unlock()
		if p.ctx.Err() != nil {
			return
		}
		p.log.Warn("worker process exited", "pid", cmd.Process.Pid, "err", err)
		if !p.cfg.Restart {
			return
		}
		pause, giveUp := sl.exited(cmd.ProcessState, time.Since(started), p.cfg)
		if giveUp {
			p.giveUp(fmt.Errorf("%w: a worker process exited %d times in a row within %s of starting (last: %w)",
				ErrGaveUp, sl.failures, p.cfg.StartupWindow, err))
			return
		}
		p.mu.Lock()
		p.restarts++
		p.mu.Unlock()
		t := time.NewTimer(pause)
		defer t.Stop()
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
		if err := p.start(sl); err != nil {
			p.log.Error("restart worker", "err", err)
		}
	}()
	return nil
}

// exited accounts for a child's exit after it lived for lived, and returns
// the pause before its restart, or giveUp. An exit by itself soon after
// starting is a failure to start, and the pauses grow; a child that lived
// past the startup window, or was killed by a signal (a test's SIGKILL, the
// OOM killer), is restarted after the first pause.
func (sl *slot) exited(st *os.ProcessState, lived time.Duration, cfg Config) (pause time.Duration, giveUp bool) {
	signaled := false
	if ws, ok := st.Sys().(syscall.WaitStatus); ok {
		signaled = ws.Signaled()
	}
	if signaled || lived >= cfg.StartupWindow {
		sl.failures = 0
		sl.pause.Reset()
		return restartFirst, false
	}
	sl.failures++
	if sl.failures >= cfg.MaxStartFailures {
		return 0, true
	}
	return sl.pause.NextBackOff(), false
}

// giveUp records err and stops restarting: the children still running
// run on until Stop.
func (p *Pool) giveUp(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gaveUp:
		return
	default:
	}
	p.err = err
	p.log.Error("worker pool: children keep failing at start; not restarting them", "err", err)
	close(p.gaveUp)
}

// Done is closed when the pool has given up restarting children that kept
// failing at start (Err says why). It is never closed otherwise.
func (p *Pool) Done() <-chan struct{} { return p.gaveUp }

// Err is why the pool gave up (wrapping ErrGaveUp and the last child's
// *exec.ExitError), or nil.
func (p *Pool) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// PIDs lists the running children.
func (p *Pool) PIDs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	pids := make([]int, 0, len(p.procs))
	for pid := range p.procs {
		pids = append(pids, pid)
	}
	return pids
}

// Restarts is how many children were respawned.
func (p *Pool) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// Stop terminates every child gracefully (SIGTERM: finish the in-flight
// batch, drain, exit), kills those still running after StopGrace, and waits
// until all are reaped. It is safe to call more than once.
func (p *Pool) Stop() {
	p.cancel()
	p.signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(p.cfg.StopGrace):
	}
	p.signal(syscall.SIGKILL)
	<-done
}

func (p *Pool) signal(sig os.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cmd := range p.procs {
		if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.log.Debug("signal worker", "pid", cmd.Process.Pid, "err", err)
		}
	}
}

// WatchParent returns a channel closed when pid is no longer this process's
// parent; with pid <= 0 it is never closed. The kernel's parent-death
// signal (set by Pool) is the first line; this poll covers platforms and
// races where that signal is not delivered. Its goroutine ends with ctx.
func WatchParent(ctx context.Context, pid int) <-chan struct{} {
	gone := make(chan struct{})
	if pid <= 0 {
		return gone
	}
	go func() { // exits with ctx or when the parent is gone
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if os.Getppid() != pid {
					close(gone)
					return
				}
			}
		}
	}()
	return gone
}

// ParentContext is ctx, also cancelled once pid is no longer this
// process's parent (pid <= 0: never). Its goroutine ends with the
// returned context: call cancel when done.
func ParentContext(ctx context.Context, pid int) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	gone := WatchParent(ctx, pid)
	go func() {
		select {
		case <-gone:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
