package command

import (
	"context"

	"github.com/ferrylab/ferry/internal/cli"
	"github.com/ferrylab/ferry/internal/list"
	"github.com/ferrylab/ferry/lab"
	"github.com/ferrylab/ferry/proto"
	"github.com/spf13/cobra"
)

type benchOptions struct {
	logOpts     `mapstructure:",squash" flags:"root"`
	fleetOpts   `mapstructure:",squash"`
	Sizes       string `mapstructure:"sizes" help:"payload sizes, comma separated, with optional B, KiB or MiB suffix (default 64 B to 4 MiB in powers of 4)"`
	RoundTrips  int    `mapstructure:"roundtrips" help:"timed round trips per size, each side"`
	Python      string `mapstructure:"python" help:"Python ProcessPoolExecutor baseline: auto (python3 on PATH, skipped if none), off, or an interpreter path"`
	Codec       string `mapstructure:"codec" help:"wire codec for ferry's side: packed, msgpack"`
	Compress    string `mapstructure:"compress" help:"compress ferry's batches and results: \"\" (off) or s2"`
	MaxDocBytes int    `mapstructure:"max_doc_bytes" help:"largest document a decoder accepts"`
	Format      string `mapstructure:"format" short:"f" help:"report format: text, json, csv"`
}

func newCmdBench() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure parts of ferry in isolation",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newCmdBenchTransport())
	return cmd
}

func newCmdBenchTransport() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "transport",
		Short: "Raw NATS echo round trip vs ferry's batch round trip, per payload size",
		Long: `transport starts an embedded NATS server on a loopback port, one ferry worker
process and one echo process (a plain NATS subscriber answering each request
with its own bytes), then, for each payload size, times round trips to the
echo and batch round trips through the worker with the noop workload (no
compute; request and reply shaped to the same size), one of each in turn,
one request in flight. It prints both medians and p99s, ferry over raw, and
ferry's median per stage. Then, with python3 on PATH (or --python PATH), it
times the same payloads through Python's ProcessPoolExecutor, one task at a
time, so the table also says what the same crossing costs a Python user on
this machine today (--python off skips it).`,
		Example: `  ferry bench transport
  ferry bench transport --sizes 64,64KiB,1MiB --roundtrips 1000
  ferry bench transport --codec msgpack --format json > transport.json
  ferry bench transport --python /usr/bin/python3.12 --sizes 64,1MiB`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var o benchOptions
			if err := cli.Load(cmd, &o); err != nil {
				return err
			}
			return runBenchTransport(cmd.Context(), cmd, &o)
		},
	}
	cli.AddFlags(cmd.Flags(), benchOptions{fleetOpts: defaultFleet(), RoundTrips: 200, Python: "auto",
		Codec: proto.CodecPacked, MaxDocBytes: proto.DefaultMaxDocBytes, Format: "text"})
	return cmd
}

func runBenchTransport(ctx context.Context, cmd *cobra.Command, o *benchOptions) error {
	log, err := o.logger()
	if err != nil {
		return err
	}
	sizes, err := list.Parse(o.Sizes, "sizes", list.Size)
	if err != nil {
		return err
	}
	return lab.RunBenchTransport(ctx, lab.BenchConfig{
		Sizes: sizes, RoundTrips: o.RoundTrips, Codec: o.Codec, Compress: o.Compress,
		Limits: proto.Limits{MaxDocBytes: o.MaxDocBytes}, Python: o.Python, MaxPayload: o.MaxPayload,
		Report: map[string]any{"codec": o.Codec, "compress": o.Compress, "roundtrips": o.RoundTrips, "max_payload": o.MaxPayload},
		Format: o.Format, Stdout: cmd.OutOrStdout(), Logger: log,
	})
}
