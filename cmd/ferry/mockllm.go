package main

import (
	"context"
	"net"
	"os"
	"time"

	"github.com/ferrylab/ferry/lab/llm"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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
			if err := load(cmd, &o); err != nil {
				return err
			}
			if cmd.Flags().Changed("listen") {
				o.LLMListen, _ = cmd.Flags().GetString("listen")
			}
			return runMockLLM(cmd.Context(), &o)
		},
	}
	fs := cmd.Flags()
	fs.String("llm-listen", "127.0.0.1:8080", "listen address host:port (port 0 = any free port)")
	// --listen spells it as the compose file and the broker do; only the
	// flag counts, since the listen key (env, config file) is the broker's.
	fs.String("listen", "", "alias of --llm-listen")
	_ = fs.MarkHidden("listen")
	addMockFlags(fs)
	return cmd
}

// mockOpts are the mock's keys (mockllm, and the in-process mock of llm
// and pipeline).
type mockOpts struct {
	LatencyP50   time.Duration `mapstructure:"latency_p50"`
	LatencyP99   time.Duration `mapstructure:"latency_p99"`
	RateLimit    float64       `mapstructure:"rate_limit"`
	Burst        int           `mapstructure:"burst"`
	ErrorRate    float64       `mapstructure:"error_rate"`
	ReplyRatio   float64       `mapstructure:"reply_ratio"`
	MaxBodyBytes int64         `mapstructure:"max_body_bytes"`
}

type mockLLMOptions struct {
	logOpts   `mapstructure:",squash"`
	mockOpts  `mapstructure:",squash"`
	LLMListen string `mapstructure:"llm_listen"`
}

// addMockFlags registers the mock's behaviour, shared by mockllm and the
// in-process mock of llm and pipeline.
func addMockFlags(fs *pflag.FlagSet) {
	fs.Duration("latency-p50", 100*time.Millisecond, "mock: median reply delay (0 = instant)")
	fs.Duration("latency-p99", 0, "mock: 99th percentile delay, making delays lognormal (0 = fixed at --latency-p50)")
	fs.Float64("rate-limit", 0, "mock: requests per second admitted, the rest answered 429 with Retry-After (0 = unlimited)")
	fs.Int("burst", 0, "mock: rate limiter bucket size (0 = one second of --rate-limit)")
	fs.Float64("error-rate", 0, "mock: fraction of requests answered 500, in [0, 1]")
	fs.Float64("reply-ratio", 0.25, "mock: completion tokens per prompt token")
	fs.Int64("max-body-bytes", 1<<20, "mock: larger request bodies are answered 413")
}

// mockConfig validates the mock keys.
func (o mockOpts) mockConfig() (llm.MockConfig, error) {
	switch {
	case o.LatencyP50 < 0:
		return llm.MockConfig{}, invalid("latency_p50", o.LatencyP50, "must be >= 0")
	case o.LatencyP99 < 0:
		return llm.MockConfig{}, invalid("latency_p99", o.LatencyP99, "must be >= 0")
	case o.LatencyP99 > o.LatencyP50 && o.LatencyP50 == 0:
		return llm.MockConfig{}, invalid("latency_p50", o.LatencyP50, "must be > 0 when latency_p99 is set")
	case o.RateLimit < 0:
		return llm.MockConfig{}, invalid("rate_limit", o.RateLimit, "must be >= 0")
	case o.Burst < 0:
		return llm.MockConfig{}, invalid("burst", o.Burst, "must be >= 0")
	case !(o.ErrorRate >= 0 && o.ErrorRate <= 1):
		return llm.MockConfig{}, invalid("error_rate", o.ErrorRate, "must be in [0, 1]")
	case !(o.ReplyRatio > 0):
		return llm.MockConfig{}, invalid("reply_ratio", o.ReplyRatio, "must be > 0")
	case o.MaxBodyBytes <= 0:
		return llm.MockConfig{}, invalid("max_body_bytes", o.MaxBodyBytes, "must be at least 1")
	}
	return llm.MockConfig{
		LatencyP50: o.LatencyP50, LatencyP99: o.LatencyP99, RateLimit: o.RateLimit, Burst: o.Burst,
		ErrorRate: o.ErrorRate, ReplyRatio: o.ReplyRatio, MaxBodyBytes: o.MaxBodyBytes,
	}, nil
}

func runMockLLM(ctx context.Context, o *mockLLMOptions) error {
	log, err := o.logger()
	if err != nil {
		return err
	}
	cfg, err := o.mockConfig()
	if err != nil {
		return err
	}
	cfg.APIKey = os.Getenv(apiKeyEnv)
	if _, _, err := net.SplitHostPort(o.LLMListen); err != nil {
		return invalid("llm_listen", o.LLMListen, "want host:port")
	}
	err = llm.ServeMock(ctx, o.LLMListen, cfg, func(addr string) {
		log.Info("mockllm ready", "url", "http://"+addr, "endpoint", "/v1/chat/completions",
			"latency_p50", cfg.LatencyP50, "latency_p99", cfg.LatencyP99, "rate_limit", cfg.RateLimit,
			"error_rate", cfg.ErrorRate, "auth", cfg.APIKey != "")
	})
	if err != nil {
		return err
	}
	log.Info("mockllm stopped")
	return nil
}
