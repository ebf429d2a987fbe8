package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ferrylab/ferry/internal/machine"
	"github.com/ferrylab/ferry/lab/llm"
)

// LLMSchema versions the JSON of an llm run; bump it on any incompatible change.
const LLMSchema = "ferry.llm/v1"

// LLM is one run of the I/O workload: calls to a chat-completions endpoint.
type LLM struct {
	Schema      string           `json:"schema"`
	Config      map[string]any   `json:"config"`
	Manifest    Manifest         `json:"manifest"`
	Endpoint    string           `json:"endpoint"`        // credentials redacted
	Mock        bool             `json:"in_process_mock"` // the endpoint was a mock inside this process
	Concurrency int              `json:"concurrency"`     // calls allowed in flight
	Calls       int64            `json:"calls"`           // calls finished, failed ones included
	OK          int64            `json:"ok"`
	Errors      int64            `json:"errors"`
	Retries     int64            `json:"retries"` // attempts beyond each call's first
	WallS       float64          `json:"wall_s"`
	CallsPerS   float64          `json:"calls_per_s"`
	P50ms       float64          `json:"latency_p50_ms"` // per call, retries and backoff included
	P99ms       float64          `json:"latency_p99_ms"`
	InFlight    int64            `json:"inflight_peak"`     // most calls in flight at once
	SerialS     float64          `json:"serial_estimate_s"` // sum of call latencies: a loop at concurrency 1
	Speedup     float64          `json:"speedup"`           // serial_estimate_s / wall_s
	PromptTok   int64            `json:"prompt_tokens"`
	ReplyTok    int64            `json:"completion_tokens"`
	ErrorKinds  map[string]int64 `json:"errors_by_kind,omitempty"`
	FirstError  string           `json:"first_error,omitempty"`
}

// NewLLM builds the report of a run on machine m from Run's Stats and a
// Tally of its results.
func NewLLM(m machine.Info, cfg map[string]any, endpoint string, mock bool, concurrency int, s llm.Stats, t llm.Tally) *LLM {
	return &LLM{
		Schema: LLMSchema, Config: cfg, Manifest: newManifest(m), Endpoint: endpoint, Mock: mock,
		Concurrency: concurrency, Calls: s.Calls, OK: s.Calls - s.Errors, Errors: s.Errors, Retries: s.Retries,
		WallS: s.Wall.Seconds(), CallsPerS: s.CallsPerSec, P50ms: ms(s.LatencyP50), P99ms: ms(s.LatencyP99),
		InFlight: s.InFlightPeak, SerialS: s.SerialEstimate.Seconds(), Speedup: s.Speedup(),
		PromptTok: t.PromptTokens, ReplyTok: t.CompletionTokens, ErrorKinds: t.ByKind, FirstError: t.FirstError,
	}
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// WriteLLM renders r as text, json or csv.
func WriteLLM(w io.Writer, r *LLM, format string) error {
	switch format {
	case "text", "":
		return writeLLMText(w, r)
	case "json":
		return writeJSON(w, r)
	case "csv":
		return writeLLMCSV(w, r)
	}
	return fmt.Errorf("report: unknown format %q (known: %v)", format, Formats)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeLLMText(w io.Writer, r *LLM) error {
	where := "external"
	if r.Mock {
		where = "in-process mock"
	}
	fmt.Fprintf(w, "endpoint: %s (%s)\n\n", r.Endpoint, where)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "calls\tok\terrors\tretries\tconcurrency\twall_s\tcalls/s\tp50_ms\tp99_ms\tinflight_peak\tserial_est_s\tspeedup\t")
	fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%.3f\t%.0f\t%.1f\t%.1f\t%d\t%.1f\t%s\t\n",
		r.Calls, r.OK, r.Errors, r.Retries, r.Concurrency, r.WallS, r.CallsPerS, r.P50ms, r.P99ms,
		r.InFlight, r.SerialS, ratio(r.Speedup))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.ErrorKinds) > 0 {
		fmt.Fprintf(w, "\nerrors by kind: %s\nfirst error: %s\n", kinds(r.ErrorKinds), r.FirstError)
	}
	verdict := fmt.Sprintf("all %d calls succeeded", r.Calls)
	if r.Errors > 0 {
		verdict = fmt.Sprintf("%d of %d calls FAILED", r.Errors, r.Calls)
	}
	_, err := fmt.Fprintf(w, "\n%s\n", verdict)
	return err
}

// kinds renders error counts as "http_500=3 refused=1", sorted by kind.
func kinds(m map[string]int64) string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}

func writeLLMCSV(w io.Writer, r *LLM) error {
	cw := csv.NewWriter(w)
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
	i := func(x int64) string { return strconv.FormatInt(x, 10) }
	_ = cw.Write([]string{"endpoint", "in_process_mock", "concurrency", "calls", "ok", "errors", "retries", "wall_s",
		"calls_per_s", "latency_p50_ms", "latency_p99_ms", "inflight_peak", "serial_estimate_s", "speedup",
		"prompt_tokens", "completion_tokens", "errors_by_kind"})
	_ = cw.Write([]string{r.Endpoint, strconv.FormatBool(r.Mock), i(int64(r.Concurrency)), i(r.Calls), i(r.OK),
		i(r.Errors), i(r.Retries), f(r.WallS), f(r.CallsPerS), f(r.P50ms), f(r.P99ms), i(r.InFlight), f(r.SerialS),
		f(r.Speedup), i(r.PromptTok), i(r.ReplyTok), kinds(r.ErrorKinds)})
	cw.Flush()
	return cw.Error()
}
