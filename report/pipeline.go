package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/ferrylab/ferry/internal/machine"
	"github.com/ferrylab/ferry/lab/pipeline"
)

// PipelineSchema versions the JSON of a pipeline run; bump it on any incompatible change.
const PipelineSchema = "ferry.pipeline/v1"

// Pipeline is a hybrid pipeline run once per chunk-stage mode.
type Pipeline struct {
	Schema           string         `json:"schema"`
	Config           map[string]any `json:"config"`
	Manifest         Manifest       `json:"manifest"`
	Endpoint         string         `json:"endpoint"`        // credentials redacted
	Mock             bool           `json:"in_process_mock"` // the endpoint was a mock inside this process
	Concurrency      int            `json:"concurrency"`     // LLM calls allowed in flight
	Runs             []PipelineRun  `json:"runs"`
	IdenticalResults bool           `json:"identical_results"` // every run produced the same digest
}

// PipelineRun is one mode's figures.
type PipelineRun struct {
	Mode       string           `json:"mode"` // where the chunk stage ran
	Workers    int              `json:"workers"`
	WallS      float64          `json:"wall_s"`
	Docs       int64            `json:"docs"`        // documents merged
	Failed     int64            `json:"failed_docs"` // documents that failed in a stage
	Chunks     int64            `json:"chunks"`      // chunks, one LLM call each
	DocsPerS   float64          `json:"docs_per_s"`
	CallsPerS  float64          `json:"calls_per_s"`
	P50ms      float64          `json:"latency_p50_ms"`
	P99ms      float64          `json:"latency_p99_ms"`
	Retries    int64            `json:"retries"`
	CallErrors int64            `json:"call_errors"`
	InFlight   int64            `json:"inflight_peak"`
	SerialS    float64          `json:"serial_estimate_s"` // sum of call latencies
	CPUActiveS float64          `json:"cpu_active_s"`      // a CPU stage (chunk or merge) held work
	IOActiveS  float64          `json:"io_active_s"`       // the LLM stage held work
	BothS      float64          `json:"both_active_s"`     // both at once
	Overlap    float64          `json:"overlap"`           // both_active_s / min(cpu_active_s, io_active_s)
	Stages     []PipelineStage  `json:"stages"`
	ErrorKinds map[string]int64 `json:"errors_by_kind,omitempty"`
	FirstFail  string           `json:"first_failure,omitempty"`
	Digest     string           `json:"digest"`
	Error      string           `json:"error,omitempty"`
}

// PipelineStage is one stage of a run; times are seconds from the run's start.
type PipelineStage struct {
	Name    string  `json:"name"`
	Kind    string  `json:"kind"`     // cpu or io
	Items   int64   `json:"items"`    // documents (chunk, merge) or calls (llm)
	FirstS  float64 `json:"first_s"`  // took in its first item
	EndS    float64 `json:"end_s"`    // last went idle
	ActiveS float64 `json:"active_s"` // held at least one item
	WorkS   float64 `json:"work_s"`   // item time summed: compute, call latency or merge
}

// NewPipeline builds the report of runs on machine m from each mode's
// stats (nil for a mode that failed before running).
func NewPipeline(m machine.Info, cfg map[string]any, endpoint string, mock bool, concurrency int, stats []*pipeline.Stats, errs []error) *Pipeline {
	r := &Pipeline{Schema: PipelineSchema, Config: cfg, Manifest: newManifest(m), Endpoint: endpoint, Mock: mock,
		Concurrency: concurrency, IdenticalResults: true}
	for i, s := range stats {
		var run PipelineRun
		if i < len(errs) && errs[i] != nil {
			run.Error = errs[i].Error()
		}
		if s == nil {
			r.IdenticalResults = false
			r.Runs = append(r.Runs, run)
			continue
		}
		run.Mode, run.Workers, run.WallS = s.Mode, s.Workers, s.Wall.Seconds()
		run.Docs, run.Failed, run.Chunks = s.Docs, s.Failed, s.Chunks
		if s.Wall > 0 {
			run.DocsPerS = float64(s.Docs) / s.Wall.Seconds()
		}
		run.CallsPerS, run.P50ms, run.P99ms = s.LLM.CallsPerSec, ms(s.LLM.LatencyP50), ms(s.LLM.LatencyP99)
		run.Retries, run.CallErrors, run.InFlight = s.LLM.Retries, s.LLM.Errors, s.LLM.InFlightPeak
		run.SerialS = s.LLM.SerialEstimate.Seconds()
		run.CPUActiveS, run.IOActiveS, run.BothS = s.CPUActive.Seconds(), s.IOActive.Seconds(), s.Both.Seconds()
		run.Overlap = s.Overlap()
		for _, st := range s.Stages {
			kind := "io"
			if st.CPU {
				kind = "cpu"
			}
			run.Stages = append(run.Stages, PipelineStage{Name: st.Name, Kind: kind, Items: st.Items,
				FirstS: st.First.Seconds(), EndS: st.End.Seconds(), ActiveS: st.Active.Seconds(), WorkS: st.Work.Seconds()})
		}
		run.ErrorKinds = s.Tally.ByKind
		if len(s.Failures) > 0 {
			run.FirstFail = fmt.Sprintf("document %d: %s", s.Failures[0].Index, s.Failures[0].Error)
		}
		run.Digest = s.Digest
		if run.Digest == "" || (len(r.Runs) > 0 && r.Runs[0].Digest != run.Digest) {
			r.IdenticalResults = false
		}
		r.Runs = append(r.Runs, run)
	}
	return r
}

// WritePipeline renders r as text, json or csv.
func WritePipeline(w io.Writer, r *Pipeline, format string) error {
	switch format {
	case "text", "":
		return writePipelineText(w, r)
	case "json":
		return writeJSON(w, r)
	case "csv":
		return writePipelineCSV(w, r)
	}
	return fmt.Errorf("report: unknown format %q (known: %v)", format, Formats)
}

func writePipelineText(w io.Writer, r *Pipeline) error {
	where := "external"
	if r.Mock {
		where = "in-process mock"
	}
	fmt.Fprintf(w, "endpoint: %s (%s), concurrency %d\n\n", r.Endpoint, where, r.Concurrency)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tworkers\twall_s\tdocs\tfailed\tchunks\tdocs/s\tcalls/s\tp50_ms\tp99_ms\tretries\tinflight_peak\tserial_est_s\toverlap\t")
	for _, m := range r.Runs {
		if m.Mode == "" {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%d\t%d\t%d\t%.0f\t%.0f\t%.1f\t%.1f\t%d\t%d\t%.1f\t%.2f\t\n",
			m.Mode, m.Workers, m.WallS, m.Docs, m.Failed, m.Chunks, m.DocsPerS, m.CallsPerS, m.P50ms, m.P99ms,
			m.Retries, m.InFlight, m.SerialS, m.Overlap)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nstages, seconds from the start (active: held work; work: item time summed):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tstage\tkind\titems\tfirst_s\tend_s\tactive_s\twork_s\t")
	for _, m := range r.Runs {
		for _, s := range m.Stages {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t\n", m.Mode, s.Name, s.Kind, s.Items, s.FirstS, s.EndS, s.ActiveS, s.WorkS)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, m := range r.Runs {
		if len(m.ErrorKinds) > 0 {
			fmt.Fprintf(w, "\n%s: call errors by kind: %s", modeLabel(m.Mode), kinds(m.ErrorKinds))
		}
		if m.FirstFail != "" {
			fmt.Fprintf(w, "\n%s: first failed %s", modeLabel(m.Mode), m.FirstFail)
		}
		if m.Error != "" {
			fmt.Fprintf(w, "\n%s: %s", modeLabel(m.Mode), m.Error)
		}
	}
	verdict := "identical results across modes: yes"
	if !r.IdenticalResults {
		verdict = "identical results across modes: NO (digests differ)"
	}
	_, err := fmt.Fprintf(w, "\n%s\n", verdict)
	return err
}

func modeLabel(m string) string {
	if m == "" {
		return "mode"
	}
	return m
}

func writePipelineCSV(w io.Writer, r *Pipeline) error {
	cw := csv.NewWriter(w)
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
	i := func(x int64) string { return strconv.FormatInt(x, 10) }
	head := []string{"mode", "workers", "wall_s", "docs", "failed_docs", "chunks", "docs_per_s", "calls_per_s",
		"latency_p50_ms", "latency_p99_ms", "retries", "call_errors", "inflight_peak", "serial_estimate_s",
		"cpu_active_s", "io_active_s", "both_active_s", "overlap"}
	for _, st := range []string{"chunk", "llm", "merge"} {
		head = append(head, st+"_active_s", st+"_work_s")
	}
	if err := cw.Write(append(head, "digest", "identical_results")); err != nil {
		return err
	}
	for _, m := range r.Runs {
		row := []string{m.Mode, i(int64(m.Workers)), f(m.WallS), i(m.Docs), i(m.Failed), i(m.Chunks), f(m.DocsPerS),
			f(m.CallsPerS), f(m.P50ms), f(m.P99ms), i(m.Retries), i(m.CallErrors), i(m.InFlight), f(m.SerialS),
			f(m.CPUActiveS), f(m.IOActiveS), f(m.BothS), f(m.Overlap)}
		for k := range 3 {
			if k < len(m.Stages) {
				row = append(row, f(m.Stages[k].ActiveS), f(m.Stages[k].WorkS))
			} else {
				row = append(row, "", "")
			}
		}
		if err := cw.Write(append(row, m.Digest, strconv.FormatBool(r.IdenticalResults))); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
