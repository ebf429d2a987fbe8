package command

import (
	"context"
	"strings"

	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/internal/cli"
	"github.com/ferrylab/ferry/lab"
	"github.com/spf13/cobra"
)

type pipelineOptions struct {
	logOpts   `mapstructure:",squash" flags:"root"`
	jobOpts   `mapstructure:",squash"`
	fleetOpts `mapstructure:",squash"`
	llmOpts   `mapstructure:",squash"`
	mockOpts  `mapstructure:",squash"`
}

func newCmdPipeline() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pipeline",
		Short: "The hybrid workload: chunk (CPU) -> one LLM call per chunk (I/O) -> merge (CPU), streamed",
		Long: `pipeline chunks each document (CPU, on the chunk stage's mode: serial,
goroutines, gil, codec, or worker processes over an embedded NATS), sends
each chunk to an LLM for a summary (I/O, up to --concurrency calls in flight
on goroutines in this process), and merges each document's summaries in
order, embedding the result (CPU). The stages stream into each other, so
all three run at once in bounded memory.

It runs once per mode in --modes and reports each run's wall time, calls,
each stage's activity and how much the CPU and I/O stages overlapped, and
whether every mode produced identical results. Without --llm-url the LLM is
a mock started in this process (see ferry mockllm for its flags).`,
		Example: `  ferry pipeline --docs 2000 --doc-words 600
  ferry pipeline --modes serial,goroutines,processes --latency-p50 200ms --format json
  ferry pipeline --input ./notes --llm-url http://127.0.0.1:8080 --out summaries.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var o pipelineOptions
			if err := cli.Load(cmd, &o); err != nil {
				return err
			}
			return runPipeline(cmd.Context(), cmd, &o)
		},
	}
	fs := cmd.Flags()
	cli.AddFlags(fs, pipelineOptions{jobOpts: defaultJob("goroutines,processes"), fleetOpts: defaultFleet(), llmOpts: defaultLLM(), mockOpts: defaultMock()})
	// The chunk stage always runs chunk; these job keys do not apply.
	for _, name := range []string{"workload", "spin-cost", "out-bytes", "model-seed", "dispatch", "job-id"} {
		_ = fs.MarkHidden(name)
	}
	return cmd
}

func runPipeline(ctx context.Context, cmd *cobra.Command, o *pipelineOptions) error {
	log, err := o.logger()
	if err != nil {
		return err
	}
	stop, err := o.startExec(o.Workload, 0)
	if err != nil {
		return err
	}
	defer stop()
	cfg, err := o.jobOpts.lab(cmd, o, log)
	if err != nil {
		return err
	}
	if o.Out != "" && !strings.HasSuffix(o.Out, ".jsonl") {
		return cli.Invalid("out", o.Out, "pipeline writes .jsonl (one merged summary per document)")
	}
	ep := o.endpoint(o.mockOpts)
	cfg.Report["modes"] = strings.Join(cfg.Modes, ",")
	return lab.RunPipeline(ctx, lab.PipelineConfig{
		Job: cfg.Job, Modes: cfg.Modes, Input: cfg.Input, Out: o.Out, MergeDim: o.Dim, Endpoint: ep,
		Fleet:  o.fleet(fleet.Config{MaxPayload: o.MaxPayload}),
		Report: cfg.Report, Format: o.Format, Stdout: cmd.OutOrStdout(), Logger: log,
	})
}
