package main

import (
	"context"
	"sync"

	"github.com/ferrylab/ferry/internal/spawn"

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
			o, err := loadOptions(cmd)
			if err != nil {
				return err
			}
			parent, _ := cmd.Flags().GetInt("parent-pid")
			subject, _ := cmd.Flags().GetString("subject")
			return runEcho(cmd.Context(), o, subject, parent)
		},
	}
	fs := cmd.Flags()
	addNATSFlags(fs, "nats://127.0.0.1:4222")
	fs.String("subject", floor.EchoSubject, "subject to answer on")
	fs.Int("parent-pid", 0, "exit when this process is no longer the parent")
	return cmd
}

func runEcho(ctx context.Context, o *Options, subject string, parent int) error {
	log, err := o.logger()
	if err != nil {
		return err
	}
	oneCore() // on the same footing as a worker
	nc, err := connect(o.NATSURL, "ferry-echo", o.auth(), log)
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
		case <-spawn.WatchParent(ctx, parent):
			cancel()
		case <-ctx.Done():
		}
	}()
	return floor.Echo(ctx, nc, subject)
}
