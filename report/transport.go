package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/machine"
	"github.com/ferrylab/ferry/lab/floor"
)

// TransportSchema versions `ferry bench transport --format json`.
const TransportSchema = "ferry.transport/v1"

// Transport is the output of `ferry bench transport`.
type Transport struct {
	Schema   string         `json:"schema"`
	Config   map[string]any `json:"config"`
	Manifest Manifest       `json:"manifest"`
	Points   []FloorPoint   `json:"points"`
}

// NewTransport builds the transport report from points measured on machine m.
func NewTransport(m machine.Info, cfg map[string]any, points []floor.Point) *Transport {
	return &Transport{Schema: TransportSchema, Config: cfg, Manifest: newManifest(m), Points: FloorPoints(points)}
}

// FloorPoints converts measured points to their report form.
func FloorPoints(points []floor.Point) []FloorPoint {
	out := make([]FloorPoint, 0, len(points))
	for _, p := range points {
		fp := FloorPoint{
			Bytes: p.Bytes, RawP50us: us(p.Raw.P50), RawP99us: us(p.Raw.P99),
			FerryP50: us(p.Ferry.P50), FerryP99: us(p.Ferry.P99), Ratio: round3(p.Ratio()),
			Roundtrip: p.Raw.N, BatchBytes: p.BatchBytes, ResultBytes: p.ResultBytes,
			Stages:      map[string]float64{},
			PythonP50us: us(p.Python.P50), PythonP99us: us(p.Python.P99), PythonRatio: round3(p.PythonRatio()),
			ShmP50us: us(p.Shm.P50), ShmP99us: us(p.Shm.P99), ShmRatio: round3(p.ShmRatio()),
		}
		for s := range coordinator.NumStages {
			fp.Stages[s.String()] = us(p.Stages[s])
		}
		out = append(out, fp)
	}
	return out
}

func round3(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 3, 64), 64)
	return v
}

// WriteTransport renders r in format (text, json or csv).
func WriteTransport(w io.Writer, r *Transport, format string) error {
	switch format {
	case "text", "":
		return writeTransportText(w, r)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "csv":
		return writeTransportCSV(w, r)
	}
	return fmt.Errorf("report: unknown format %q (known: %v)", format, Formats)
}

func writeTransportText(w io.Writer, r *Transport) error {
	n := 0
	if len(r.Points) > 0 {
		n = r.Points[0].Roundtrip
	}
	fmt.Fprintf(w, "raw NATS echo vs ferry batch round trip (noop workload), one request in flight, %d round trips each per size\n", n)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	py, sh := r.hasPython(), r.hasShm()
	fmt.Fprint(tw, "bytes\traw_p50_us\traw_p99_us\tferry_p50_us\tferry_p99_us\tratio\t")
	if sh {
		fmt.Fprint(tw, "shm_p50_us\tshm_p99_us\tshm_ratio\t")
	}
	if py {
		fmt.Fprint(tw, "python_p50_us\tpython_p99_us\tvs_python\t")
	}
	for s := range coordinator.NumStages {
		fmt.Fprintf(tw, "%s\t", s)
	}
	fmt.Fprintln(tw)
	for _, p := range r.Points {
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.2fx\t", size(p.Bytes), p.RawP50us, p.RawP99us, p.FerryP50, p.FerryP99, p.Ratio)
		if sh {
			fmt.Fprintf(tw, "%.0f\t%.0f\t%.2fx\t", p.ShmP50us, p.ShmP99us, p.ShmRatio)
		}
		if py {
			fmt.Fprintf(tw, "%.0f\t%.0f\t%.2fx\t", p.PythonP50us, p.PythonP99us, p.PythonRatio)
		}
		for s := range coordinator.NumStages {
			fmt.Fprintf(tw, "%.0f\t", p.Stages[s.String()])
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\nstages are ferry's medians in microseconds; ratio is ferry_p50 / raw_p50, measured alternately in this run")
	if err == nil && sh {
		_, err = fmt.Fprintln(w, "shm is ferry's round trip to the same worker over shared memory (--data-plane shm), measured in turn; shm_ratio is shm_p50 / raw_p50")
	}
	if err == nil && py {
		_, err = fmt.Fprintf(w, "python is one task at a time through ProcessPoolExecutor (Python %v), measured after ferry in this run; vs_python is ferry_p50 / python_p50\n", r.Config["python_version"])
	}
	return err
}

// hasShm reports whether the shared-memory round trip was measured.
func (r *Transport) hasShm() bool {
	for _, p := range r.Points {
		if p.ShmP50us > 0 {
			return true
		}
	}
	return false
}

// hasPython reports whether the Python baseline was measured.
func (r *Transport) hasPython() bool {
	for _, p := range r.Points {
		if p.PythonP50us > 0 {
			return true
		}
	}
	return false
}

func writeTransportCSV(w io.Writer, r *Transport) error {
	cw := csv.NewWriter(w)
	head := []string{"bytes", "raw_p50_us", "raw_p99_us", "ferry_p50_us", "ferry_p99_us", "ratio", "roundtrips", "batch_bytes", "result_bytes", "python_p50_us", "python_p99_us", "ferry_over_python"}
	for s := range coordinator.NumStages {
		head = append(head, s.String()+"_p50_us")
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
	for _, p := range r.Points {
		row := []string{strconv.Itoa(p.Bytes), f(p.RawP50us), f(p.RawP99us), f(p.FerryP50), f(p.FerryP99), f(p.Ratio),
			strconv.Itoa(p.Roundtrip), strconv.Itoa(p.BatchBytes), strconv.Itoa(p.ResultBytes),
			f(p.PythonP50us), f(p.PythonP99us), f(p.PythonRatio)}
		for s := range coordinator.NumStages {
			row = append(row, f(p.Stages[s.String()]))
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// writeFloor prints the transport floor measured alongside a run, one line
// per payload size.
func writeFloor(w io.Writer, floor []FloorPoint) {
	if len(floor) == 0 {
		return
	}
	parts := make([]string, 0, len(floor))
	for _, p := range floor {
		parts = append(parts, fmt.Sprintf("%s: raw NATS echo %.0f us, ferry %.0f us (%.2fx)", size(p.Bytes), p.RawP50us, p.FerryP50, p.Ratio))
	}
	fmt.Fprintf(w, "\ntransport floor, p50 round trip with empty compute, this run: %s\n", strings.Join(parts, "; "))
}

// writeBoundaryCPU says, when the floor carries a raw echo's CPU cost, how
// much CPU per document the broker hop alone takes at this run's batch size,
// how processes mode's CPU per document splits into compute (goroutines'),
// that floor and the rest (ferry's own work, and compute that runs slower
// on cores shared with the broker), and the most a CPU-bound processes run
// can reach on these cores against goroutines.
func writeBoundaryCPU(w io.Writer, r *Report) {
	var fp *FloorPoint
	for i := range r.Floor {
		if r.Floor[i].RawCPUus > 0 {
			fp = &r.Floor[i]
		}
	}
	proc, gor := r.mode(coordinator.ModeProcesses), r.mode(coordinator.ModeGoroutines)
	if fp == nil || proc == nil || proc.Batches == 0 {
		return
	}
	perBatch := float64(proc.Docs) / float64(proc.Batches)
	floor := fp.RawCPUus / perBatch
	fmt.Fprintf(w, "boundary CPU: a raw NATS echo of %s each way, %d in flight, costs %.0f us of CPU (broker and both ends) = %.2f us/doc at %.0f docs/batch\n",
		size(fp.Bytes), fp.RawCPUInFlight, fp.RawCPUus, floor, perBatch)
	defer writeCPUBreakdown(w, r.CPUBreakdown, floor) // under the lines above, with or without goroutines
	if gor == nil || gor.CPUus <= 0 || proc.CPUus <= 0 {
		return
	}
	fmt.Fprintf(w, "  processes %.1f us/doc = compute %.1f (goroutines) + NATS floor %.1f + rest %.1f (ferry's own work, compute slowed by shared cores); CPU-bound, processes reach at most %.2fx goroutines on these cores\n",
		proc.CPUus, gor.CPUus, floor, proc.CPUus-gor.CPUus-floor, gor.CPUus/(gor.CPUus+floor))
}

// mode returns the named mode's figures, or nil if it did not run.
func (r *Report) mode(name string) *Mode {
	for i := range r.Modes {
		if r.Modes[i].Mode == name {
			return &r.Modes[i]
		}
	}
	return nil
}

// size prints a byte count the way people read it: 64 B, 16 KiB, 4 MiB.
func size(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
