package fleet

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/ferrylab/ferry/internal/cpuprof"
	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/ferrylab/ferry/worker"
)

// workerEnv is a worker's environment: where to connect, as whom, and
// where to write the CPU recordings StartProfiles asks for.
func (f *Fleet) workerEnv(url string, a natsconn.Auth) []string {
	return append(ChildEnv(url, a), cpuprof.EnvDir+"="+f.profDir)
}

// ErrNoProfiles is returned by StartProfiles when the fleet cannot record
// its workers (it has none of its own).
var ErrNoProfiles = errors.New("fleet: no worker processes to profile")

// StartProfiles asks every worker process to record a CPU profile, with
// its own CPU clock, until StopProfiles: the split of each worker's CPU
// into parts over one mode's run (cpuprof).
func (f *Fleet) StartProfiles() error {
	pids := f.WorkerPIDs()
	if f.profDir == "" || len(pids) == 0 {
		return ErrNoProfiles
	}
	var err error
	f.profiled, err = cpuprof.StartChildren(f.profDir, pids)
	return err
}

// StopProfiles ends the workers' recordings and returns them, classified,
// waiting at most a few seconds for a busy worker to write its file.
// Only the workers StartProfiles asked are asked (one still starting is
// not); one gone since has nothing to give: an error names it, and the
// others are returned.
func (f *Fleet) StopProfiles(ctx context.Context) ([]cpuprof.Profile, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	pids := f.profiled
	f.profiled = nil
	return cpuprof.StopChildren(ctx, f.profDir, pids, func(pid int) string { return "worker " + strconv.Itoa(pid) })
}

// timeHandler makes cfg's worker time each batch it handles, from the
// Start event to the one that ends it (both on the handler's goroutine),
// by the thread's CPU clock, and returns the stopwatch.
func timeHandler(cfg *worker.Config) *cpuprof.Stopwatch {
	sw := new(cpuprof.Stopwatch)
	observe := cfg.Observe
	var t0 time.Duration // the handler serves one batch at a time
	cfg.Observe = func(ev worker.Event) {
		if ev.Start {
			t0 = sw.Begin()
		} else {
			sw.End(t0)
		}
		if observe != nil {
			observe(ev)
		}
	}
	return sw
}
