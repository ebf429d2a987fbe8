// Command ferry runs CPU-heavy batch work on goroutines or on worker
// processes over NATS and measures what the process boundary costs.
// One binary; the role is a subcommand (run, broker, worker, coordinator).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"syscall"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/lab/llm"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { // the first signal stops gracefully; a second one kills at once
		<-ctx.Done()
		stop()
	}()
	stopProfile := startProfile(os.Getenv("FERRY_CPUPROFILE"))
	err := newCmdRoot().ExecuteContext(ctx)
	stopProfile()
	stop()
	os.Exit(exitCode(err))
}

// startProfile writes a CPU profile of this process to path (a debugging
// aid: FERRY_CPUPROFILE=cpu.out ferry run; each worker gets path.<pid>).
// An empty path does nothing.
func startProfile(path string) func() {
	if path == "" {
		return func() {}
	}
	if os.Getenv("FERRY_PARENT_PID") != "" {
		path = fmt.Sprintf("%s.%d", path, os.Getpid())
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferry: cpu profile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "ferry: cpu profile:", err)
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// configErrors are the sentinels of invalid configuration (exit code 2).
var configErrors = []error{
	errUsage, coordinator.ErrInvalidConfig, broker.ErrInvalidConfig, fleet.ErrInvalidConfig,
	corpus.ErrInvalidConfig, llm.ErrInvalidConfig,
}

// exitCode prints err as one line and maps it to the process exit code:
// 2 for invalid configuration or usage, 130 for an interrupt, 1 otherwise.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "ferry:", err)
	switch {
	case slices.ContainsFunc(configErrors, func(e error) bool { return errors.Is(err, e) }):
		return 2
	case errors.Is(err, context.Canceled):
		return 130
	}
	return 1
}
