package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/internal/machine"
	"github.com/ferrylab/ferry/lab/llm"
	"github.com/ferrylab/ferry/report"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// errCallsFailed marks a run that finished but had failed calls (exit 1).
var errCallsFailed = errors.New("llm: some calls failed")

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
			o, err := loadOptions(cmd)
			if err != nil {
				return err
			}
			return runLLM(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	addCorpusFlags(fs)
	addLLMClientFlags(fs)
	addMockFlags(fs)
	fs.StringP("format", "f", "text", "report format: "+strings.Join(report.Formats, ", "))
	return cmd
}

// addLLMClientFlags registers the client keys shared by llm and pipeline.
func addLLMClientFlags(fs *pflag.FlagSet) {
	fs.String("llm-url", "", `OpenAI-compatible base URL, e.g. https://api.openai.com/v1 ("" = an in-process mock); key from FERRY_LLM_API_KEY`)
	fs.String("llm-model", "", "model name sent with each call (empty = ferry-mock)")
	fs.Int("concurrency", 1000, "LLM calls in flight at most (against a real API: what its rate limit allows)")
	fs.Duration("llm-timeout", time.Minute, "timeout of each HTTP attempt")
	fs.Int("llm-max-attempts", 4, "attempts per call, the first included (1 = never retry)")
	fs.Int("llm-max-prompt-bytes", 768<<10, "longer prompts fail their call without a request")
	fs.Bool("llm-warmup", false, "before timing, open --concurrency connections (one rejected POST {} each: no tokens spent)")
}

// llmClientConfig validates the client keys; URL and APIKey are set by the endpoint.
func (o *Options) llmClientConfig() (llm.ClientConfig, error) {
	switch {
	case o.Concurrency <= 0:
		return llm.ClientConfig{}, invalid("concurrency", o.Concurrency, "must be at least 1")
	case o.LLMTimeout <= 0:
		return llm.ClientConfig{}, invalid("llm_timeout", o.LLMTimeout, "must be positive")
	case o.LLMMaxAttempts <= 0:
		return llm.ClientConfig{}, invalid("llm_max_attempts", o.LLMMaxAttempts, "must be at least 1")
	case o.LLMMaxPromptBytes <= 0:
		return llm.ClientConfig{}, invalid("llm_max_prompt_bytes", o.LLMMaxPromptBytes, "must be at least 1")
	case !slices.Contains(report.Formats, o.Format):
		return llm.ClientConfig{}, invalid("format", o.Format, "must be one of "+strings.Join(report.Formats, ", "))
	}
	return llm.ClientConfig{
		Model: o.LLMModel, Timeout: o.LLMTimeout, MaxAttempts: o.LLMMaxAttempts,
		Concurrency: o.Concurrency, MaxPromptBytes: o.LLMMaxPromptBytes,
	}, nil
}

// endpoint is where LLM calls go: an external server or a mock started here.
type endpoint struct {
	url  string // base URL, with any credentials in it
	mock bool
	stop func() error // stops the in-process mock; nil for an external server
}

// close stops the in-process mock, if one was started.
func (e endpoint) close() error {
	if e.stop == nil {
		return nil
	}
	return e.stop()
}

// shown is the URL as logs and reports print it: no user info, no query.
func (e endpoint) shown() string { return redactURL(e.url) }

// redactURL hides user info and the query string, where keys hide.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<unparsable url>"
	}
	if u.User != nil {
		u.User = url.User("***")
	}
	if u.RawQuery != "" {
		u.RawQuery = "***"
	}
	return u.String()
}

// newLLMClient starts the in-process mock unless llm_url is set and returns
// a client for the endpoint. The caller calls ep.close when done.
func newLLMClient(ctx context.Context, o *Options, log *slog.Logger) (*llm.Client, endpoint, error) {
	ccfg, err := o.llmClientConfig()
	if err != nil {
		return nil, endpoint{}, err
	}
	var ep endpoint
	if o.LLMURL != "" {
		ep.url = o.LLMURL
		ccfg.APIKey = os.Getenv(apiKeyEnv)
	} else {
		mcfg, err := o.mockConfig()
		if err != nil {
			return nil, endpoint{}, err
		}
		if ep, err = startMock(ctx, mcfg); err != nil {
			return nil, endpoint{}, err
		}
	}
	ccfg.URL = ep.url
	client, err := llm.NewClient(ccfg)
	if err != nil {
		_ = ep.close()
		// The only field left unchecked here is the URL.
		return nil, endpoint{}, invalid("llm_url", ep.shown(), strings.TrimPrefix(err.Error(), llm.ErrInvalidConfig.Error()+": "))
	}
	log.Info("llm endpoint", "url", ep.shown(), "in_process_mock", ep.mock, "api_key", ccfg.APIKey != "")
	checkNoFile(log, o.Concurrency)
	return client, ep, nil
}

// startMock serves a mock on a free loopback port until stop is called.
func startMock(ctx context.Context, cfg llm.MockConfig) (endpoint, error) {
	ctx, cancel := context.WithCancel(ctx)
	addr, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- llm.ServeMock(ctx, "127.0.0.1:0", cfg, func(a string) { addr <- a }) }()
	select {
	case a := <-addr:
		return endpoint{url: "http://" + a, mock: true, stop: func() error { cancel(); return <-done }}, nil
	case err := <-done:
		cancel()
		return endpoint{}, err
	}
}

func runLLM(ctx context.Context, o *Options, stdout io.Writer) (err error) {
	log, err := o.logger()
	if err != nil {
		return err
	}
	src, err := openSource(o)
	if err != nil {
		return err
	}
	defer src.Close()
	client, ep, err := newLLMClient(ctx, o, log)
	if err != nil {
		return err
	}
	defer func() {
		if serr := ep.close(); serr != nil && err == nil {
			err = serr
		}
	}()
	if o.LLMWarmup {
		t0 := time.Now()
		n, werr := client.Warm(ctx, o.Concurrency)
		log.Info("warmed connections", "opened", n, "took", time.Since(t0).Round(time.Millisecond), "err", werr)
	}

	var tally llm.Tally
	prompts, inputErr := promptSeq(src)
	st, runErr := llm.Run(ctx, client, prompts, o.Concurrency, tally.Add)
	cfg := o.configMap()
	if u, ok := cfg["llm_url"].(string); ok {
		cfg["llm_url"] = redactURL(u)
	}
	r := report.NewLLM(machine.Probe(), cfg, ep.shown(), ep.mock, o.Concurrency, st, tally)
	if err := report.WriteLLM(stdout, r, o.Format); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	switch {
	case runErr != nil:
		return fmt.Errorf("interrupted after %d calls: %w", st.Calls, runErr)
	case *inputErr != nil:
		return fmt.Errorf("read input after %d prompts: %w", st.Calls, *inputErr)
	case st.Calls == 0:
		return errors.New("the input has no documents")
	case st.Errors > 0:
		return fmt.Errorf("%w: %d of %d (%s)", errCallsFailed, st.Errors, st.Calls, kindsLine(tally.ByKind))
	}
	return nil
}

// promptSeq yields the documents of src as prompts. A read error ends the
// sequence and is left in *err for after the run.
func promptSeq(src corpus.Source) (iter.Seq2[int, string], *error) {
	var err error
	return func(yield func(int, string) bool) {
		for d, rerr := range corpus.All(src) {
			if rerr != nil {
				err = rerr
				return
			}
			if !yield(int(d.Index), d.Text) {
				return
			}
		}
	}, &err
}

// kindsLine is "http_500=3, refused=1", sorted.
func kindsLine(m map[string]int64) string {
	var parts []string
	for k, n := range m {
		parts = append(parts, fmt.Sprintf("%s=%d", k, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}
