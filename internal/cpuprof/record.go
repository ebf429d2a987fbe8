package cpuprof

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrProfiling is returned when this process is already being profiled
// (FERRY_CPUPROFILE, or another recording): only one CPU profile can run.
var ErrProfiling = errors.New("cpuprof: a CPU profile is already running")

// Recording is a CPU profile of this process in progress, with its clock.
type Recording struct {
	buf     bytes.Buffer
	cpu0    time.Duration
	faults0 int64
}

// Hz is pprof's sampling rate, per CPU second of each thread. Linux checks
// a thread's CPU timer only at a kernel tick that finds the thread
// running (250 Hz here, CONFIG_HZ) and sends one signal however many
// periods passed since, so a thread that runs in short bursts is
// undersampled, the more so the higher the rate: on this 2-core VM a
// thread that works 0.1 ms and sleeps 0.2 ms is sampled for 80% of its
// CPU at 100 Hz and 60% at 200 Hz (96-100% when busy). Hence the sampled
// total is shown beside the clock's, never put in its place. pprof fixes
// the rate (setting another first makes the runtime print a warning).
const Hz = 100

// Start starts profiling this process.
func Start() (*Recording, error) {
	r := &Recording{}
	if err := pprof.StartCPUProfile(&r.buf); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProfiling, err)
	}
	r.cpu0, r.faults0 = selfUsage()
	return r, nil
}

// Stop ends the recording and returns the profile's bytes (gzipped pprof),
// the CPU this process used meanwhile and its minor page faults (first
// touches of memory: fresh heap a copy or a zeroing lands in).
func (r *Recording) Stop() (data []byte, cpu time.Duration, faults int64) {
	cpu, faults = selfUsage()
	pprof.StopCPUProfile()
	return r.buf.Bytes(), cpu - r.cpu0, faults - r.faults0
}

// selfUsage is this process's user and system time (getrusage: to the
// microsecond, where /proc's stat counts 10 ms ticks) and minor faults.
func selfUsage() (time.Duration, int64) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Minflt
}

func selfCPU() time.Duration {
	cpu, _ := selfUsage()
	return cpu
}

// A child process (a worker) records when its parent asks: EnvDir names
// the directory it writes to, SIGUSR1 starts a recording, SIGUSR2 stops it
// and writes <dir>/<pid>.cpuprof. Signals, not a NATS subject, so the
// request needs no broker permissions and reaches a worker whatever it is
// busy with.
const (
	EnvDir      = "FERRY_CPUPROF_DIR"
	startSignal = syscall.SIGUSR1
	stopSignal  = syscall.SIGUSR2
)

// header starts a recording's file: the CPU by the child's own clock, its
// handler's (Stopwatch) and its minor faults, then the profile (empty when
// the child was profiled already).
const header = "ferry-cpuprof v1 "

// Serve records on request until ctx is done, when dir is not empty (the
// value of EnvDir); it returns at once otherwise. Call it before the
// process announces itself, so a request never meets the signals' default
// action (exit). handler, if not nil, times the process's batch handler:
// each recording carries the CPU it took meanwhile (Profile.Handler).
func Serve(ctx context.Context, dir string, handler *Stopwatch) {
	if dir == "" {
		return
	}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, startSignal, stopSignal)
	// Only now may the parent signal: the signals' default action is exit.
	if f, err := os.Create(readyName(dir, os.Getpid())); err == nil {
		f.Close()
	}
	go func() { // owned by ctx: ends with it
		defer signal.Stop(sig)
		defer os.Remove(readyName(dir, os.Getpid()))
		var rec *Recording
		var cpu0, handler0 time.Duration
		var faults0 int64
		for {
			select {
			case <-ctx.Done():
				if rec != nil {
					rec.Stop()
				}
				return
			case s := <-sig:
				switch {
				case s == startSignal && rec == nil:
					cpu0, faults0 = selfUsage()
					handler0 = handler.Total()
					rec, _ = Start() // already profiled: an empty profile, the clock still counts
					if rec == nil {
						rec = &Recording{cpu0: -1}
					}
				case s == stopSignal && rec != nil:
					var data []byte
					cpu, faults := selfUsage()
					hcpu := handler.Total() - handler0
					if rec.cpu0 >= 0 {
						data, _, _ = rec.Stop()
					}
					rec = nil
					_ = write(dir, os.Getpid(), cpu-cpu0, hcpu, faults-faults0, data) // the parent's wait names what is missing
				}
			}
		}
	}()
}

// write puts a recording where Collect finds it, whole or not at all.
func write(dir string, pid int, cpu, handler time.Duration, faults int64, data []byte) error {
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(tmp, "%s%d %d %d\n", header, int64(cpu), int64(handler), faults)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), fileName(dir, pid))
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

func fileName(dir string, pid int) string {
	return filepath.Join(dir, strconv.Itoa(pid)+".cpuprof")
}

// readyName marks a child that serves requests (Serve).
func readyName(dir string, pid int) string {
	return filepath.Join(dir, strconv.Itoa(pid)+".ready")
}

// Request sends sig to each of pids (children serving EnvDir).
func request(pids []int, sig syscall.Signal) error {
	var errs []error
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil {
			errs = append(errs, fmt.Errorf("cpuprof: signal %d: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

// StartChildren asks each of pids that serves requests in dir (Serve) to
// start recording, and returns those it asked: a child still starting, or
// not serving, is left alone (the signal would end it). Their earlier
// recordings are removed first.
func StartChildren(dir string, pids []int) (started []int, err error) {
	for _, pid := range pids {
		if _, err := os.Stat(readyName(dir, pid)); err != nil {
			continue
		}
		os.Remove(fileName(dir, pid))
		started = append(started, pid)
	}
	return started, request(started, startSignal)
}

// StopChildren asks each of pids to stop recording and waits (until ctx
// is done) for their files, which it reads and classifies, naming each
// process name(pid). A child that did not answer is an error; the others
// are returned.
func StopChildren(ctx context.Context, dir string, pids []int, name func(pid int) string) ([]Profile, error) {
	err := request(pids, stopSignal)
	var out []Profile
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	left := append([]int(nil), pids...)
	for len(left) > 0 {
		pid := left[0]
		b, rerr := os.ReadFile(fileName(dir, pid))
		if errors.Is(rerr, os.ErrNotExist) {
			select {
			case <-ctx.Done():
				return out, errors.Join(err, fmt.Errorf("cpuprof: no profile from process %d: %w", pid, ctx.Err()))
			case <-tick.C:
				continue
			}
		}
		left = left[1:]
		if rerr != nil {
			err = errors.Join(err, rerr)
			continue
		}
		p, perr := parseFile(name(pid), b)
		if perr != nil {
			err = errors.Join(err, perr)
			continue
		}
		out = append(out, p)
	}
	return out, err
}

// parseFile reads a child's recording (header, then the profile).
func parseFile(name string, b []byte) (Profile, error) {
	line, rest, ok := bytes.Cut(b, []byte("\n"))
	s, found := strings.CutPrefix(string(line), header)
	if !ok || !found {
		return Profile{Name: name}, fmt.Errorf("cpuprof: %s: not a recording", name)
	}
	f := strings.Fields(s)
	var v [3]int64 // cpu ns, handler ns, faults; the last two may be absent
	for i := range v {
		var err error
		if i < len(f) {
			v[i], err = strconv.ParseInt(f[i], 10, 64)
		}
		if err != nil || v[i] < 0 || len(f) == 0 || len(f) > len(v) {
			return Profile{Name: name}, fmt.Errorf("cpuprof: %s: bad clocks %q", name, s)
		}
	}
	p, err := Parse(name, time.Duration(v[0]), rest)
	p.Handler, p.Faults = time.Duration(v[1]), v[2]
	return p, err
}
