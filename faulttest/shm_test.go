//go:build linux

package faulttest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/internal/poll"
	"github.com/ferrylab/ferry/worker"
)

// shmFleet starts a local fleet of worker processes with shared memory
// (--data-plane shm) and returns it with its processes/shm backend maker.
func shmFleet(t *testing.T, workers int) *fleet.Fleet {
	t.Helper()
	f, err := fleet.Start(context.Background(), fleet.Config{Workers: workers, Shm: true, Exe: ferryBin, Workload: "spin"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func runShm(t *testing.T, f *fleet.Fleet, cfg coordinator.Config, expect int, src *source, l *ledger) (*coordinator.Stats, error) {
	t.Helper()
	b, err := coordinator.NewBackend(coordinator.BackendConfig{Mode: coordinator.ModeProcesses, Job: cfg, Conn: f.Conn(), Expect: expect, Shm: f.Shm()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return coordinator.Run(ctx, cfg, src, b, l)
}

// TestShmSIGKILLWorkers is TestSIGKILLWorkers over shared memory: workers
// SIGKILLed mid-job (the fleet restarts them with new regions) cost
// retries, never a missing or doubled document; a killed worker's batch is
// failed when its socket closes, not at its deadline.
func TestShmSIGKILLWorkers(t *testing.T) {
	r := rng(t)
	n, kills, workers := 20_000, 10, 3
	d := docs(n)
	cfg := job(10, 20*time.Microsecond)
	cfg.TimeoutFloor = 10 * time.Second // a retry at the deadline would show as a stall; shm must not need it
	f := shmFleet(t, workers)
	points := faultPoints(r, n, kills)
	var killed []int
	src := &source{docs: d, at: func(i int) {
		for len(points) > 0 && points[0] == i {
			points = points[1:]
			if pids := f.WorkerPIDs(); len(pids) > 0 {
				if pid := pids[r.IntN(len(pids))]; syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed = append(killed, pid)
				}
			}
		}
	}}
	l := newLedger(t, d, cfg.Params)
	start := time.Now()
	st, err := runShm(t, f, cfg, workers, src, l)
	if err != nil {
		t.Fatalf("job: %v", err)
	}
	v := l.verdict()
	summary(t, "shm-sigkill", v, st, fmt.Sprintf("kills=%d max_stall=%s planes=%v", len(killed), l.maxStall(start).Round(time.Millisecond), st.Planes))
	v.check(t)
	if st.Mode != "processes/shm" {
		t.Errorf("mode = %q", st.Mode)
	}
	for addr, p := range st.Planes { // every worker, restarted ones too, on its own region
		if p != coordinator.PlaneShm {
			t.Errorf("worker %s: plane %q, want shm", addr, p)
		}
	}
	if len(st.Planes) < workers {
		t.Errorf("planes = %v: want at least %d workers", st.Planes, workers)
	}
	if resent, bound := st.Retries+st.Splits, int64(len(killed)*cfg.InFlight); resent > bound {
		t.Errorf("re-sent batches = %d retries + %d splits, want at most kills x in-flight = %d", st.Retries, st.Splits, bound)
	}
	if stall := l.maxStall(start); stall >= cfg.TimeoutFloor {
		t.Errorf("the output stalled %s: a killed worker's batch waited for its deadline", stall)
	}
	// Reclaimed: the killed workers' regions are unmapped here, and only
	// the live workers' remain (one mapping each), however many died.
	poll.WaitFor(t, 15*time.Second, "one region per live worker", func() bool {
		return f.Shm().Len() == workers && mappedRegions(t) == workers
	})
}

// mappedRegions counts the shm regions this process maps.
func mappedRegions(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "memfd:ferry-shm")
}

// TestShmPoisonDocumentKillsWorker is TestPoisonDocumentKillsWorker over
// shared memory: the document that kills its worker is isolated by
// retries and bisection and reported alone.
func TestShmPoisonDocumentKillsWorker(t *testing.T) {
	r := rng(t)
	n, workers := 3_000, 2
	d := docs(n)
	bad := r.IntN(n)
	t.Setenv(worker.EnvCrashOn, d[bad]) // the fleet's workers inherit this process's environment
	cfg := job(10, 20*time.Microsecond)
	f := shmFleet(t, workers)
	l := newLedger(t, d, cfg.Params)
	st, err := runShm(t, f, cfg, workers, &source{docs: d}, l)
	v := l.verdict(bad)
	summary(t, "shm-poison-crash", v, st, fmt.Sprintf("poison=%d err=%q", bad, err))
	if !errors.Is(err, coordinator.ErrDocsFailed) {
		t.Fatalf("err = %v, want ErrDocsFailed", err)
	}
	v.check(t, bad)
	if len(st.Failed) != 1 || st.Failed[0].Index != int64(bad) {
		t.Errorf("failed = %+v, want only document %d", st.Failed, bad)
	}
	if st.Splits == 0 {
		t.Errorf("splits = 0: the batch was never bisected")
	}
}

// TestShmGracefulScaleDown is TestGracefulScaleDown over shared memory:
// a worker given SIGTERM says bye on its socket, answers every batch sent
// before the coordinator's ack, and exits; later sends to it are
// requeued. No batch runs twice: 0 retries. (The fleet restarts the
// stopped workers, as it would a crashed one.)
func TestShmGracefulScaleDown(t *testing.T) {
	r := rng(t)
	n, workers := 20_000, 4
	d := docs(n)
	cfg := job(10, 50*time.Microsecond)
	cfg.TimeoutFloor = 5 * time.Second
	f := shmFleet(t, workers)
	stopAt := n/4 + r.IntN(n/4)
	var stopped int
	src := &source{docs: d, at: func(i int) {
		if i != stopAt {
			return
		}
		pids := f.WorkerPIDs()
		for _, pid := range pids[:workers/2] {
			if syscall.Kill(pid, syscall.SIGTERM) == nil {
				stopped++
			}
		}
	}}
	l := newLedger(t, d, cfg.Params)
	st, err := runShm(t, f, cfg, workers, src, l)
	if err != nil {
		t.Fatalf("job: %v", err)
	}
	v := l.verdict()
	summary(t, "shm-scale-down", v, st, fmt.Sprintf("sigterm=%d planes=%d", stopped, len(st.Planes)))
	v.check(t)
	if stopped != workers/2 {
		t.Fatalf("stopped %d workers, want %d", stopped, workers/2)
	}
	if st.Retries != 0 || st.Splits != 0 {
		t.Errorf("retries = %d, splits = %d: a graceful stop made batches run twice", st.Retries, st.Splits)
	}
}
