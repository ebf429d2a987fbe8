package main

import (
	"context"
	"sync"

	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/ferrylab/ferry/internal/spawn"
	"github.com/ferrylab/ferry/proto"

	"github.com/ferrylab/ferry/lab/floor"
	"github.com/spf13/cobra"
)

func newCmdEcho() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "echo",
		Short:  "Answer every request on ferry.echo with its own bytes (the transport floor)",
		Hidden: true, // spawned by `ferry bench transport` and `ferry run`
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var o echoOptions
			if err := load(cmd, &o); err != nil {
				return err
			}
			return runEcho(cmd.Context(), &o)
		},
	}
	fs := cmd.Flags()
	addNATSFlags(fs, "nats://127.0.0.1:4222")
	fs.String("subject", proto.EchoSubject, "subject to answer on")
	fs.Int("parent-pid", 0, "exit when this process is no longer the parent")
	return cmd
}

type echoOptions struct {
	logOpts   `mapstructure:",squash"`
	natsOpts  `mapstructure:",squash"`
	Subject   string `mapstructure:"subject"`
	ParentPID int    `mapstructure:"parent_pid"`
}

func runEcho(ctx context.Context, o *echoOptions) error {
	log, err := o.logger()
	if err != nil {
		return err
	}
	oneCore() // on the same footing as a worker
	nc, err := natsconn.Connect(o.NATSURL, "ferry-echo", o.auth(), log)
	if err != nil {
		return err
	}
	defer nc.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(1)
	go func() { // owned here: ends with ctx (cancel above) or the parent
		defer wg.Done()
		select {
		case <-spawn.WatchParent(ctx, o.ParentPID):
			cancel()
		case <-ctx.Done():
		}
	}()
	return floor.Echo(ctx, nc, o.Subject)
}
