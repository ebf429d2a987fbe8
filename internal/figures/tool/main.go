// Command tool runs the commands behind the figures of README.md and docs/
// and rewrites their blocks; scripts/figures.sh is how it is meant to be
// called (it builds ferry first):
//
//	go run ./internal/figures/tool run -bin BIN [-quick] [-repeats N] [SET...]
//	go run ./internal/figures/tool render [SET...]
//
// run saves docs/figures/SET.json and docs/figures/machine.json, then
// renders; render rewrites the blocks from the committed data alone.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/ferrylab/ferry/internal/figures"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) < 2 {
		return fmt.Errorf("usage: tool run|render [flags] [SET...]; sets: %v", figures.SetNames())
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ContinueOnError)
	bin := fs.String("bin", "", "the ferry binary (run)")
	quick := fs.Bool("quick", false, "small sizes: check the machinery, not a measurement")
	repeats := fs.Int("repeats", 3, "rounds of the repeated commands")
	root := fs.String("root", ".", "the repository root")
	if err := fs.Parse(os.Args[2:]); err != nil {
		return err
	}
	sets := fs.Args()
	for _, s := range sets {
		if _, ok := figures.Sets[s]; !ok {
			return fmt.Errorf("figures: no set %q; sets: %v", s, figures.SetNames())
		}
	}
	switch os.Args[1] {
	case "run":
		if *bin == "" {
			return fmt.Errorf("figures: run needs -bin")
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		names := sets
		if len(names) == 0 {
			names = figures.SetNames()
		}
		start := time.Now()
		dir := *root + "/" + figures.DataDir
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for _, n := range names {
			d, err := figures.Measure(ctx, figures.Sets[n], figures.Options{Bin: *bin, Quick: *quick, Repeats: *repeats, Log: os.Stderr, Root: *root})
			if err != nil {
				return err
			}
			if err := d.Save(dir); err != nil {
				return err
			}
			if err := figures.SaveMachine(dir, d.Machine); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "figures: %s took %.0f s\n", n, d.RuntimeS)
		}
		fmt.Fprintf(os.Stderr, "figures: all runs took %.0f s\n", time.Since(start).Seconds())
		return render(*root, sets)
	case "render":
		return render(*root, sets)
	}
	return fmt.Errorf("figures: unknown command %q (run, render)", os.Args[1])
}

func render(root string, sets []string) error {
	docs, err := figures.Documents(root)
	if err != nil {
		return err
	}
	for _, p := range docs {
		if err := figures.RenderFile(root, p, sets...); err != nil {
			return err
		}
	}
	return nil
}
