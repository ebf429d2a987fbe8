package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/lab"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/report"
	"github.com/spf13/cobra"
)

type benchOptions struct {
	logOpts     `mapstructure:",squash"`
	Sizes       string `mapstructure:"sizes"`
	RoundTrips  int    `mapstructure:"roundtrips"`
	Python      string `mapstructure:"python"`
	Codec       string `mapstructure:"codec"`
	Compress    string `mapstructure:"compress"`
	MaxDocBytes int    `mapstructure:"max_doc_bytes"`
	Format      string `mapstructure:"format"`
	MaxPayload  int    `mapstructure:"max_payload"`
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
			if err := load(cmd, &o); err != nil {
				return err
			}
			return runBenchTransport(cmd.Context(), cmd, &o)
		},
	}
	fs := cmd.Flags()
	fs.String("sizes", "", "payload sizes, comma separated, with optional B, KiB or MiB suffix (default 64 B to 4 MiB in powers of 4)")
	fs.Int("roundtrips", 200, "timed round trips per size, each side")
	fs.String("python", "auto", "Python ProcessPoolExecutor baseline: auto (python3 on PATH, skipped if none), off, or an interpreter path")
	fs.String("codec", proto.CodecPacked, "wire codec for ferry's side: "+strings.Join(proto.CodecNames(), ", "))
	fs.String("compress", "", `compress ferry's batches and results: "" (off) or s2`)
	fs.Int("max-doc-bytes", proto.DefaultMaxDocBytes, "largest document a decoder accepts")
	fs.StringP("format", "f", "text", "report format: "+strings.Join(report.Formats, ", "))
	fs.Int("max-payload", broker.DefaultMaxPayload, "embedded broker's max message size in bytes")
	return cmd
}

func runBenchTransport(ctx context.Context, cmd *cobra.Command, o *benchOptions) error {
	log, err := o.logger()
	if err != nil {
		return err
	}
	sizes, err := parseList(o.Sizes, "sizes", parseSize)
	if err != nil {
		return err
	}
	c, err := proto.NewCodec(o.Codec, proto.Limits{MaxDocBytes: o.MaxDocBytes})
	if err != nil {
		return invalid("codec", o.Codec, err.Error())
	}
	codec, err := proto.NewCompressed(c, o.Compress, o.MaxPayload)
	if err != nil {
		return invalid("compress", o.Compress, err.Error())
	}
	return lab.RunBenchTransport(ctx, lab.BenchConfig{
		Sizes: sizes, RoundTrips: o.RoundTrips, Codec: codec, Python: o.Python, MaxPayload: o.MaxPayload,
		Report: map[string]any{"codec": o.Codec, "compress": o.Compress, "roundtrips": o.RoundTrips, "max_payload": o.MaxPayload},
		Format: o.Format, Stdout: cmd.OutOrStdout(), Logger: log,
	})
}

// parseSize parses "64", "1KiB" or "4MiB".
func parseSize(f string) (int, error) {
	mult := 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"K", 1 << 10}, {"M", 1 << 20}, {"B", 1}} {
		if strings.HasSuffix(f, u.suffix) {
			f, mult = strings.TrimSpace(strings.TrimSuffix(f, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.Atoi(f)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q is not a positive size", f)
	}
	return n * mult, nil
}
