// Package childtest runs ferry workers as real child OS processes of a test
// binary, so tests and benchmarks cross a real process boundary without
// building the ferry binary: the test binary re-executes itself, and Main,
// called from TestMain, turns the child into a worker.
//
// It is for tests only; `ferry run` spawns the ferry binary instead
// (spawn.Start).
package childtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ferrylab/ferry/internal/spawn"

	"github.com/ferrylab/ferry/worker"
)

// envRole tells a re-executed test binary what to be; envURL where to connect.
const (
	envRole = "FERRY_CHILDTEST_ROLE"
	envURL  = "FERRY_CHILDTEST_URL"
	// EnvCPUProfile, when set to a directory, makes every child write a CPU
	// profile there (<role>-<pid>.pprof), to see where a worker's time goes.
	EnvCPUProfile = "FERRY_CHILDTEST_CPUPROFILE"
)

// RoleWorker is a ferry worker (worker.New + Run), the role every package has.
const RoleWorker = "worker"

// Role is what a child runs: it gets the NATS URL and runs until ctx ends.
type Role func(ctx context.Context, url string) error

// Main runs the tests, or, in a child started by Start, the child's role
// until SIGTERM or the parent exits. Call it from TestMain; roles adds roles
// beyond RoleWorker (nil = none).
func Main(m *testing.M, roles map[string]Role) {
	role := os.Getenv(envRole)
	if role == "" {
		os.Exit(m.Run())
	}
	os.Exit(child(role, roles))
}

// child runs role and returns the exit code.
func child(role string, roles map[string]Role) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if dir := os.Getenv(EnvCPUProfile); dir != "" {
		stopProfile, err := startProfile(dir, role)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer stopProfile()
	}
	url := os.Getenv(envURL)
	var err error
	switch f, ok := roles[role]; {
	case role == RoleWorker:
		err = runWorker(ctx, url)
	case ok:
		err = f(ctx, url)
	default:
		err = fmt.Errorf("childtest: unknown role %q", role)
	}
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func startProfile(dir, role string) (stop func(), err error) {
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", role, os.Getpid())))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// runWorker runs a worker as `ferry worker` does, with one P unless
// GOMAXPROCS is set.
func runWorker(ctx context.Context, url string) error {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	ppid, _ := strconv.Atoi(os.Getenv("FERRY_PARENT_PID"))
	w, err := worker.New(worker.Config{URL: url, ParentPID: ppid})
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// Start starts n children of role connected to url and stops them (SIGTERM,
// then SIGKILL) when tb's test ends. It returns once they are started, not
// once they are connected.
func Start(tb testing.TB, role, url string, n int) *spawn.Pool {
	tb.Helper()
	p, err := spawn.Start(context.Background(), spawn.Config{
		Exe:   os.Args[0],
		Args:  []string{"-test.run=^$"},
		Procs: n,
		Env:   append([]string{envRole + "=" + role, envURL + "=" + url}, extraEnv...),
	})
	if err != nil {
		tb.Fatalf("start %d %s children: %v", n, role, err)
	}
	tb.Cleanup(p.Stop)
	return p
}

var extraEnv = strings.Fields(os.Getenv("FERRY_CHILDTEST_ENV"))

// BuildFerry builds the ferry binary into a new temporary directory, for
// tests that run it as a real process. Call cleanup when done with it.
func BuildFerry() (bin string, cleanup func(), err error) {
	return Build("github.com/ferrylab/ferry/cmd/ferry")
}

// Build builds the main package pkg (a ferry binary with workloads of its
// own, say) into a new temporary directory, as BuildFerry does.
func Build(pkg string) (bin string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "ferry-bin-")
	if err != nil {
		return "", nil, err
	}
	bin = filepath.Join(dir, "ferry")
	out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

// MainWithFerry builds the ferry binary (BuildFerry), sets *bin to it,
// runs the tests and removes it. Call it from TestMain.
func MainWithFerry(m *testing.M, bin *string) {
	b, cleanup, err := BuildFerry()
	if err != nil {
		panic(err)
	}
	*bin = b
	code := m.Run()
	cleanup()
	os.Exit(code)
}
