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

// apiKeyEnv is the only place an LLM API key is read from: a flag value or
// a config file would end up in shell history, ps output and reports.
const apiKeyEnv = "FERRY_LLM_API_KEY"

func newCmdMockLLM() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mockllm",
		Short: "Serve an OpenAI-compatible chat-completions mock (latency, rate limit, errors)",
		Long: `mockllm serves POST /v1/chat/completions and GET /healthz like a slow,
rate-limited, occasionally failing LLM API, so the llm and pipeline commands
can be measured reproducibly and for free. Replies are deterministic: the
prompt's words in reverse order, reply_ratio tokens per prompt token.

If FERRY_LLM_API_KEY is set, requests must carry it as a Bearer token.
Ctrl-C stops accepting, lets in-flight replies finish briefly, and exits 0.`,
		Example: `  ferry mockllm                                           # 127.0.0.1:8080, 100 ms per reply
  ferry mockllm --latency-p50 500ms                       # the 5,000-call demo's mock
  ferry mockllm --latency-p50 300ms --latency-p99 3s --rate-limit 200 --error-rate 0.01
  ferry llm --llm-url http://127.0.0.1:8080 --docs 5000 --concurrency 5000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var o mockLLMOptions
			if err := cli.Load(cmd, &o); err != nil {
				return err
			}
			if cmd.Flags().Changed("listen") {
				o.LLMListen, _ = cmd.Flags().GetString("listen")
			}
			return runMockLLM(cmd.Context(), &o)
		},
	}
	cli.AddFlags(cmd.Flags(), mockLLMOptions{mockOpts: defaultMock(), LLMListen: "127.0.0.1:8080"})
	// --listen spells it as the compose file and the broker do; only the
	// flag counts, since the listen key (env, config file) is the broker's.
	cmd.Flags().String("listen", "", "alias of --llm-listen")
	_ = cmd.Flags().MarkHidden("listen")
	return cmd
}

// mockOpts are the mock's keys (mockllm, and the in-process mock of llm
// and pipeline).
type mockOpts struct {
	LatencyP50   time.Duration `mapstructure:"latency_p50" help:"mock: median reply delay (0 = instant)"`
	LatencyP99   time.Duration `mapstructure:"latency_p99" help:"mock: 99th percentile delay, making delays lognormal (0 = fixed at --latency-p50)"`
	RateLimit    float64       `mapstructure:"rate_limit" help:"mock: requests per second admitted, the rest answered 429 with Retry-After (0 = unlimited)"`
	Burst        int           `mapstructure:"burst" help:"mock: rate limiter bucket size (0 = one second of --rate-limit)"`
	ErrorRate    float64       `mapstructure:"error_rate" help:"mock: fraction of requests answered 500, in [0, 1]"`
	ReplyRatio   float64       `mapstructure:"reply_ratio" help:"mock: completion tokens per prompt token"`
	MaxBodyBytes int64         `mapstructure:"max_body_bytes" help:"mock: larger request bodies are answered 413"`
}

func defaultMock() mockOpts {
	return mockOpts{LatencyP50: 100 * time.Millisecond, ReplyRatio: 0.25, MaxBodyBytes: 1 << 20}
}

type mockLLMOptions struct {
	logOpts   `mapstructure:",squash" flags:"root"`
	mockOpts  `mapstructure:",squash"`
	LLMListen string `mapstructure:"llm_listen" help:"listen address host:port (port 0 = any free port)"`
}

// mockConfig is the mock keys as the mock's Config (it validates itself).
func (o mockOpts) mockConfig() llm.MockConfig {
	return llm.MockConfig{
		LatencyP50: o.LatencyP50, LatencyP99: o.LatencyP99, RateLimit: o.RateLimit, Burst: o.Burst,
		ErrorRate: o.ErrorRate, ReplyRatio: o.ReplyRatio, MaxBodyBytes: o.MaxBodyBytes,
	}
}

func runMockLLM(ctx context.Context, o *mockLLMOptions) error {
	log, err := o.logger()
	if err != nil {
		return err
	}
	cfg := o.mockConfig()
	cfg.APIKey = os.Getenv(apiKeyEnv)
	return lab.ServeMockLLM(ctx, o.LLMListen, cfg, log)
}
