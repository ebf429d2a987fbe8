package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/internal/machine"
	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/ferrylab/ferry/lab/llm"
	"github.com/ferrylab/ferry/report"
)

// ErrCallsFailed marks an llm run that finished but had failed calls.
var ErrCallsFailed = errors.New("llm: some calls failed")

// LLMEndpoint says where LLM calls go: URL, or else an in-process mock
// configured by Mock.
type LLMEndpoint struct {
	URL    string           // OpenAI-compatible base URL; "" = an in-process mock
	APIKey string           // sent as a bearer token to URL
	Mock   llm.MockConfig   // the in-process mock's behaviour, when URL is ""
	Client llm.ClientConfig // the client; its URL and APIKey are set here
}

// endpoint is a started LLMEndpoint.
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

// closeInto closes the endpoint, keeping its error in *err unless *err
// already holds one (for a deferred call).
func (e endpoint) closeInto(err *error) {
	if cerr := e.close(); cerr != nil && *err == nil {
		*err = cerr
	}
}

// shown is the URL as logs and reports print it: no user info, no query.
func (e endpoint) shown() string { return natsconn.Redact(e.url) }

// start starts the in-process mock unless URL is set and returns a client
// for the endpoint. The caller calls ep.close when done.
func (e LLMEndpoint) start(ctx context.Context, log *slog.Logger) (*llm.Client, endpoint, error) {
	ccfg := e.Client
	if ccfg.Concurrency < 1 { // each run needs its bound on calls in flight
		return nil, endpoint{}, fmt.Errorf("%w: concurrency=%d: must be at least 1", llm.ErrInvalidConfig, ccfg.Concurrency)
	}
	if err := e.Mock.Validate(); e.URL == "" && err != nil {
		return nil, endpoint{}, err
	}
	var ep endpoint
	if e.URL != "" {
		ep.url, ccfg.APIKey = e.URL, e.APIKey
	} else {
		var err error
		if ep, err = startMock(ctx, e.Mock); err != nil {
			return nil, endpoint{}, err
		}
	}
	ccfg.URL = ep.url
	client, err := llm.NewClient(ccfg)
	if err != nil {
		_ = ep.close()
		return nil, endpoint{}, err
	}
	log.Info("llm endpoint", "url", ep.shown(), "in_process_mock", ep.mock, "api_key", ccfg.APIKey != "")
	checkNoFile(log, ccfg.Concurrency)
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

// LLMConfig configures RunLLM: one call per document of Input.
type LLMConfig struct {
	Input    Input
	Endpoint LLMEndpoint
	Warmup   bool           // open Client.Concurrency connections before timing
	Report   map[string]any // the configuration echoed in the report
	Format   string         // report format; "" = text
	Stdout   io.Writer      // nil = discard
	Logger   *slog.Logger   // nil = discard
}

// RunLLM sends each document as the prompt of one chat-completions call,
// with at most Client.Concurrency in flight, and writes the report. The run
// always finishes; it returns ErrCallsFailed when any call failed.
func RunLLM(ctx context.Context, cfg LLMConfig) (err error) {
	log := orDiscard(cfg.Logger)
	if err := (Config{Modes: []string{"serial"}, Input: cfg.Input, Format: cfg.Format}).Validate(); err != nil {
		return err // the input and format keys
	}
	src, err := cfg.Input.open()
	if err != nil {
		return err
	}
	defer src.Close()
	client, ep, err := cfg.Endpoint.start(ctx, log)
	if err != nil {
		return err
	}
	defer ep.closeInto(&err)
	concurrency := cfg.Endpoint.Client.Concurrency
	if cfg.Warmup {
		t0 := time.Now()
		n, werr := client.Warm(ctx, concurrency)
		log.Info("warmed connections", "opened", n, "took", time.Since(t0).Round(time.Millisecond), "err", werr)
	}
	var tally llm.Tally
	prompts, inputErr := promptSeq(src)
	st, runErr := llm.Run(ctx, client, prompts, concurrency, tally.Add)
	r := report.NewLLM(machine.Probe(), cfg.Report, ep.shown(), ep.mock, concurrency, st, tally)
	if err := report.WriteLLM(orStdout(cfg.Stdout), r, cfg.Format); err != nil {
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
		return fmt.Errorf("%w: %d of %d (%s)", ErrCallsFailed, st.Errors, st.Calls, kindsLine(tally.ByKind))
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

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

func orStdout(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// ServeMockLLM serves the mock on addr until ctx is done (ferry mockllm).
func ServeMockLLM(ctx context.Context, addr string, cfg llm.MockConfig, log *slog.Logger) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%w: llm_listen=%s: want host:port", llm.ErrInvalidConfig, addr)
	}
	err := llm.ServeMock(ctx, addr, cfg, func(a string) {
		log.Info("mockllm ready", "url", "http://"+a, "endpoint", "/v1/chat/completions",
			"latency_p50", cfg.LatencyP50, "latency_p99", cfg.LatencyP99, "rate_limit", cfg.RateLimit,
			"error_rate", cfg.ErrorRate, "auth", cfg.APIKey != "")
	})
	if err == nil {
		log.Info("mockllm stopped")
	}
	return err
}
