// Package command is ferry's command tree: one cobra command per
// subcommand (run, broker, worker, coordinator, sweep, recommend, bench...),
// each reading its own options (flags, FERRY_ environment, config file)
// into a package's Config and calling one Run. It is the body of every
// ferry binary: cmd/ferry's and a user's own (ferry.Main), so it does no
// work itself and holds no state beyond the command being run.
package command

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/internal/cli"
	"github.com/ferrylab/ferry/internal/health"
	"github.com/ferrylab/ferry/internal/profile"
	"github.com/ferrylab/ferry/lab/llm"
	"github.com/ferrylab/ferry/workload"
)

// Main registers workloads, runs the command line in os.Args and returns
// the process exit code (see exitCode). It owns the signal context: the
// first SIGINT or SIGTERM stops gracefully, a second one kills at once.
// Only a main calls it.
func Main(workloads ...workload.Def) int {
	if err := workload.Register(workloads...); err != nil {
		return exitCode(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { // the first signal stops gracefully; a second one kills at once
		<-ctx.Done()
		stop()
	}()
	stopProfile := profile.Start()
	err := newCmdRoot().ExecuteContext(ctx)
	stopProfile()
	stop()
	return exitCode(err)
}

// configErrors are the sentinels of invalid configuration (exit code 2).
var configErrors = []error{
	cli.ErrUsage, cli.ErrInvalidConfig, coordinator.ErrInvalidConfig, broker.ErrInvalidConfig, fleet.ErrInvalidConfig,
	corpus.ErrInvalidConfig, llm.ErrInvalidConfig, health.ErrBadURL,
	workload.ErrInvalidDef, workload.ErrDuplicate, workload.ErrInvalidParams, workload.ErrUnknown,
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
