package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"

	"github.com/ferrylab/ferry/lab/sweep"
)

// Samples is one file's measurements: for each key (a sweep point or a
// run's mode) and metric, every sample.
type Samples struct {
	Name    string
	Keys    []string // in file order
	Metrics []string // in display order
	Values  map[string]map[string][]float64
}

func newSamples(name string, metrics ...string) *Samples {
	return &Samples{Name: name, Metrics: metrics, Values: map[string]map[string][]float64{}}
}

func (s *Samples) add(key, metric string, v float64) {
	m, ok := s.Values[key]
	if !ok {
		m = map[string][]float64{}
		s.Values[key] = m
		s.Keys = append(s.Keys, key)
	}
	m[metric] = append(m[metric], v)
}

// LoadSamples reads a sweep records file (.jsonl or .csv), a sweep JSON
// (ferry sweep --format json) or a run report JSON (ferry run --format json).
func LoadSamples(path string) (*Samples, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var head struct {
		Schema string `json:"schema"`
	}
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(trimmed, &head) == nil {
		switch head.Schema {
		case SweepSchema:
			var r SweepReport
			if err := json.Unmarshal(trimmed, &r); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			if r.Sweep == nil {
				return nil, fmt.Errorf("%s: sweep report without a sweep", path)
			}
			return recordSamples(filepath.Base(path), r.Sweep.Records), nil
		case Schema:
			var r Report
			if err := json.Unmarshal(trimmed, &r); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return reportSamples(filepath.Base(path), &r), nil
		case "":
		default:
			return nil, fmt.Errorf("%s: unknown schema %q", path, head.Schema)
		}
	}
	if bytes.HasPrefix(trimmed, []byte("mode,")) {
		return nil, fmt.Errorf("%s: a run report CSV has no spread; compare run reports as JSON (--format json) or sweep records", path)
	}
	recs, err := sweep.ReadRecords(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s: no records", path)
	}
	return recordSamples(filepath.Base(path), recs), nil
}

func recordSamples(name string, recs []sweep.Record) *Samples {
	s := newSamples(name, "docs_per_s", "batch_us", "overhead", "transport_us", "compute_us")
	for _, r := range recs {
		if r.Error != "" {
			continue
		}
		k := r.Key()
		s.add(k, "docs_per_s", r.DocsPerS)
		s.add(k, "batch_us", r.BatchUs)
		s.add(k, "overhead", r.Overhead)
		if r.TransportUs > 0 {
			s.add(k, "transport_us", r.TransportUs)
		}
		s.add(k, "compute_us", r.ComputeUs)
	}
	return s
}

func reportSamples(name string, r *Report) *Samples {
	s := newSamples(name, "docs_per_s", "wall_s", "busy_mean", "overhead")
	stages := []string{"encode", "transport", "worker_decode", "compute", "worker_encode", "decode"}
	for _, st := range stages {
		s.Metrics = append(s.Metrics, st+"_p50_us")
	}
	for _, m := range r.Modes {
		if m.Mode == "" || m.Error != "" {
			continue
		}
		k := fmt.Sprintf("mode=%s/workers=%d", m.Mode, m.Workers)
		s.add(k, "docs_per_s", m.DocsPerS)
		s.add(k, "wall_s", m.WallS)
		s.add(k, "busy_mean", m.BusyMean)
		s.add(k, "overhead", m.Overhead)
		for _, st := range stages {
			if q, ok := m.Stages[st]; ok {
				s.add(k, st+"_p50_us", q.P50us)
			}
		}
	}
	return s
}

// DiffRow is one key's change in one metric.
type DiffRow struct {
	Metric string
	Key    string
	A, B   sweep.Spread
	NA, NB int
	Delta  float64 // (median B - median A) / median A
	// Significant is set when both sides have at least two samples and
	// their ranges do not overlap; Known is false with a single sample on
	// either side (no spread to judge by).
	Significant, Known bool
}

// Diff compares b against a, metric by metric, on the keys both hold.
func Diff(a, b *Samples) []DiffRow {
	var rows []DiffRow
	for _, metric := range a.Metrics {
		for _, k := range a.Keys {
			xa, xb := a.Values[k][metric], b.Values[k][metric]
			if len(xa) == 0 || len(xb) == 0 {
				continue
			}
			r := DiffRow{Metric: metric, Key: k, A: sweep.NewSpread(xa), B: sweep.NewSpread(xb), NA: len(xa), NB: len(xb)}
			if r.A == (sweep.Spread{}) && r.B == (sweep.Spread{}) {
				continue // not measured in this mode (overhead of goroutines)
			}
			if r.A.Median != 0 {
				r.Delta = (r.B.Median - r.A.Median) / math.Abs(r.A.Median)
			}
			r.Known = r.NA >= 2 && r.NB >= 2
			r.Significant = r.Known && (r.A.Max < r.B.Min || r.B.Max < r.A.Min)
			rows = append(rows, r)
		}
	}
	return rows
}

// ErrNothingInCommon is returned by WriteDiff when the files share no key.
var ErrNothingInCommon = errors.New("report: the two files have no point in common")

// WriteDiff prints rows in benchstat's shape: per metric, each key's
// median ± half its range in both files, and the change, or "~" when the
// ranges overlap; a geometric mean of the changes closes each metric.
func WriteDiff(w io.Writer, a, b *Samples, rows []DiffRow) error {
	if len(rows) == 0 {
		return ErrNothingInCommon
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	metric := ""
	var logSum float64
	var nLog int
	closeMetric := func() {
		if metric != "" && nLog > 0 {
			fmt.Fprintf(tw, "geomean\t\t\t%+.2f%%\t\n", 100*(math.Exp(logSum/float64(nLog))-1))
		}
		logSum, nLog = 0, 0
	}
	for _, r := range rows {
		if r.Metric != metric {
			closeMetric()
			if metric != "" {
				fmt.Fprintln(tw)
			}
			metric = r.Metric
			fmt.Fprintf(tw, "%s\t%s\t%s\tvs base\t\n", metric, a.Name, b.Name)
		}
		change := fmt.Sprintf("%+.2f%%", 100*r.Delta)
		switch {
		case !r.Known:
			change += " (n=1, no spread)"
		case r.Significant:
			change += " (ranges apart)"
		default:
			change = "~ (ranges overlap)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", r.Key, withSpread(r.A, r.NA), withSpread(r.B, r.NB), change)
		if r.A.Median > 0 && r.B.Median > 0 {
			logSum += math.Log(r.B.Median / r.A.Median)
			nLog++
		}
	}
	closeMetric()
	return tw.Flush()
}

func withSpread(s sweep.Spread, n int) string {
	if n < 2 || s.Median == 0 {
		return si(s.Median)
	}
	return fmt.Sprintf("%s ± %.0f%%", si(s.Median), 100*(s.Max-s.Min)/2/math.Abs(s.Median))
}

// si prints x with four significant digits and a k or M suffix, as
// benchstat does.
func si(x float64) string {
	switch a := math.Abs(x); {
	case a >= 1e6:
		return strconv.FormatFloat(x/1e6, 'f', max(0, 3-int(math.Floor(math.Log10(a/1e6)))), 64) + "M"
	case a >= 1e3:
		return strconv.FormatFloat(x/1e3, 'f', max(0, 3-int(math.Floor(math.Log10(a/1e3)))), 64) + "k"
	case a == 0:
		return "0"
	}
	return strconv.FormatFloat(x, 'g', 4, 64)
}
