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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { // the first signal stops gracefully; a second one kills at once
		<-ctx.Done()
		stop()
	}()
	stopProfile := profile.Start()
	err := newCmdRoot().ExecuteContext(ctx)
	stopProfile()
	stop()
	os.Exit(exitCode(err))
}

// configErrors are the sentinels of invalid configuration (exit code 2).
var configErrors = []error{
	cli.ErrUsage, cli.ErrInvalidConfig, coordinator.ErrInvalidConfig, broker.ErrInvalidConfig, fleet.ErrInvalidConfig,
	corpus.ErrInvalidConfig, llm.ErrInvalidConfig, health.ErrBadURL,
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
