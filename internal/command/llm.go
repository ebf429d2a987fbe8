package command

import (
	"context"
	"os"
	"time"

	"github.com/ferrylab/ferry/internal/cli"
	"github.com/ferrylab/ferry/lab"
	"github.com/ferrylab/ferry/lab/llm"
	"github.com/spf13/cobra"
)

func newCmdLLM() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "llm",
		Short: "The I/O-bound workload: one chat-completions call per document, concurrently",
		Long: `llm sends each document as the prompt of one POST /v1/chat/completions
call, with at most --concurrency calls in flight on goroutines, and reports
calls/s, latency, retries, the in-flight peak, and what a serial loop would
have taken (the sum of the call latencies) against the wall time.

Without --llm-url it starts a mock in this process on a loopback port,
configured by the mock flags (see ferry mockllm). With --llm-url it calls that
server; the API key is read from FERRY_LLM_API_KEY only.

A failed call (prompt over the limit, garbage reply, refused connection,
retries exhausted on 429/5xx) is counted by kind; the run always finishes,
prints the report and exits 1 if any call failed.`,
		Example: `  ferry llm --docs 5000 --concurrency 5000 --latency-p50 500ms
  ferry llm --llm-url http://127.0.0.1:8080 --input prompts.txt --format json
  FERRY_LLM_API_KEY=sk-... ferry llm --llm-url https://api.openai.com/v1 --llm-model gpt-4o-mini --concurrency 16 --docs 20`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var o llmCmdOptions
			if err := cli.Load(cmd, &o); err != nil {
				return err
			}
			return runLLM(cmd.Context(), cmd, &o)
		},
	}
	cli.AddFlags(cmd.Flags(), llmCmdOptions{corpusOpts: defaultCorpus(), llmOpts: defaultLLM(), mockOpts: defaultMock(), Format: "text"})
	return cmd
}

// llmOpts are the LLM client's keys (llm, pipeline).
type llmOpts struct {
	LLMURL            string        `mapstructure:"llm_url" redact:"true" help:"OpenAI-compatible base URL, e.g. https://api.openai.com/v1 (\"\" = an in-process mock); key from FERRY_LLM_API_KEY"`
	LLMModel          string        `mapstructure:"llm_model" help:"model name sent with each call (empty = ferry-mock)"`
	Concurrency       int           `mapstructure:"concurrency" help:"LLM calls in flight at most (against a real API: what its rate limit allows)"`
	LLMTimeout        time.Duration `mapstructure:"llm_timeout" help:"timeout of each HTTP attempt"`
	LLMMaxAttempts    int           `mapstructure:"llm_max_attempts" help:"attempts per call, the first included (1 = never retry)"`
	LLMMaxPromptBytes int           `mapstructure:"llm_max_prompt_bytes" help:"longer prompts fail their call without a request"`
	LLMWarmup         bool          `mapstructure:"llm_warmup" help:"before timing, open --concurrency connections (one rejected POST {} each: no tokens spent)"`
}

func defaultLLM() llmOpts {
	return llmOpts{Concurrency: 1000, LLMTimeout: time.Minute, LLMMaxAttempts: 4, LLMMaxPromptBytes: 768 << 10}
}

// endpoint says where calls go: llm_url, or an in-process mock
// configured by m (lab validates both).
func (o llmOpts) endpoint(m mockOpts) lab.LLMEndpoint {
	ep := lab.LLMEndpoint{URL: o.LLMURL, Mock: m.mockConfig(), Client: llm.ClientConfig{
		Model: o.LLMModel, Timeout: o.LLMTimeout, MaxAttempts: o.LLMMaxAttempts,
		Concurrency: o.Concurrency, MaxPromptBytes: o.LLMMaxPromptBytes,
	}}
	if o.LLMURL != "" {
		ep.APIKey = os.Getenv(apiKeyEnv)
	}
	return ep
}

type llmCmdOptions struct {
	logOpts    `mapstructure:",squash" flags:"root"`
	corpusOpts `mapstructure:",squash"`
	llmOpts    `mapstructure:",squash"`
	mockOpts   `mapstructure:",squash"`
	Format     string `mapstructure:"format" short:"f" help:"report format: text, json, csv"`
}

func runLLM(ctx context.Context, cmd *cobra.Command, o *llmCmdOptions) error {
	log, err := o.logger()
	if err != nil {
		return err
	}
	return lab.RunLLM(ctx, lab.LLMConfig{
		Input: o.input(), Endpoint: o.endpoint(o.mockOpts), Warmup: o.LLMWarmup,
		Report: cli.Echo(o), Format: o.Format, Stdout: cmd.OutOrStdout(), Logger: log,
	})
}
