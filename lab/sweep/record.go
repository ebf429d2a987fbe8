package sweep

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/ferrylab/ferry/coordinator"
)

// Record is one run of one point: what the grid asked for and what the run
// measured. Times are in microseconds, stage times are per-batch means.
type Record struct {
	Seq    int `json:"seq"`    // order in which the runs happened, from 0
	Repeat int `json:"repeat"` // which repeat of its point, from 0
	Point
	Docs     int64   `json:"docs"`
	WallS    float64 `json:"wall_s"`
	DocsPerS float64 `json:"docs_per_s"`
	Batches  int64   `json:"batches"`
	// MeanBatch is documents per batch actually cut (auto sizes, splits, the tail).
	MeanBatch float64 `json:"mean_batch"`
	// BatchUs is the wall time one worker spends per batch: workers x mean
	// batch / throughput. It is what the break-even model fits.
	BatchUs        float64 `json:"batch_us"`
	EncodeUs       float64 `json:"encode_us"`
	TransportUs    float64 `json:"transport_us"`
	QueueUs        float64 `json:"queue_us"` // waiting in the worker behind a pipelined batch; 0 from workers that do not send it
	WorkerDecodeUs float64 `json:"worker_decode_us"`
	ComputeUs      float64 `json:"compute_us"`
	WorkerEncodeUs float64 `json:"worker_encode_us"`
	DecodeUs       float64 `json:"decode_us"`
	// Overhead is the non-compute share of the mean per-batch stage time,
	// the queue left out (coordinator.Stats.Overhead).
	Overhead float64 `json:"overhead"`
	Busy     float64 `json:"busy"` // mean fraction of wall time workers spent computing
	// CPUus is the CPU time per document of every process of the run
	// (this one with its embedded broker, and the worker processes);
	// 0 = not measured.
	CPUus   float64 `json:"cpu_us_per_doc,omitempty"`
	Retries int64   `json:"retries"`
	Error   string  `json:"error,omitempty"`
}

func newRecord(seq, repeat int, p Point, st *coordinator.Stats, err error) Record {
	r := Record{Seq: seq, Repeat: repeat, Point: p}
	if err != nil {
		r.Error = err.Error()
	}
	if st == nil {
		return r
	}
	r.Docs, r.WallS, r.DocsPerS, r.Batches = st.Docs, st.Wall.Seconds(), st.DocsPerSec(), st.Batches
	if st.Batches > 0 {
		r.MeanBatch = float64(st.Docs) / float64(st.Batches)
	}
	if r.DocsPerS > 0 {
		r.BatchUs = float64(p.Workers) * r.MeanBatch / r.DocsPerS * 1e6
	}
	us := func(s coordinator.Stage) float64 { return float64(st.Stages[s].Mean) / float64(time.Microsecond) }
	r.EncodeUs, r.TransportUs, r.WorkerDecodeUs = us(coordinator.StageEncode), us(coordinator.StageTransport), us(coordinator.StageWorkerDecode)
	r.ComputeUs, r.WorkerEncodeUs, r.DecodeUs = us(coordinator.StageCompute), us(coordinator.StageWorkerEncode), us(coordinator.StageDecode)
	r.QueueUs = us(coordinator.StageQueue)
	r.Overhead, r.Busy, r.Retries = st.Overhead(), st.BusyMean(), st.Retries
	if st.CPU > 0 && st.Docs > 0 {
		r.CPUus = float64(st.CPU) / float64(st.Docs) / float64(time.Microsecond)
	}
	return r
}

// RecordWriter appends records to a file, JSON lines or CSV by the file's
// extension, and flushes each one: an interrupted sweep keeps every run it
// finished.
type RecordWriter struct {
	f   *os.File
	buf *bufio.Writer
	csv *csv.Writer
}

// CreateRecords creates path: .csv gives CSV with a header row, .jsonl,
// .ndjson or .json gives one JSON object per line.
func CreateRecords(path string) (*RecordWriter, error) {
	ext := strings.ToLower(filepath.Ext(path))
	if ext != ".csv" && ext != ".jsonl" && ext != ".ndjson" && ext != ".json" {
		return nil, fmt.Errorf("records file %s: extension must be .jsonl or .csv", path)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create records: %w", err)
	}
	w := &RecordWriter{f: f, buf: bufio.NewWriter(f)}
	if ext == ".csv" {
		w.csv = csv.NewWriter(w.buf)
		if err := w.csv.Write(csvHeader()); err != nil {
			f.Close()
			return nil, err
		}
		w.csv.Flush()
		if err := w.buf.Flush(); err != nil {
			f.Close()
			return nil, err
		}
	}
	return w, nil
}

// Write appends r and flushes it to the file.
func (w *RecordWriter) Write(r Record) error {
	if w.csv != nil {
		if err := w.csv.Write(csvRow(r)); err != nil {
			return err
		}
		w.csv.Flush()
		if err := w.csv.Error(); err != nil {
			return err
		}
	} else {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		w.buf.Write(append(b, '\n'))
	}
	return w.buf.Flush()
}

// Close flushes and closes the file.
func (w *RecordWriter) Close() error {
	ferr := w.buf.Flush()
	return errors.Join(ferr, w.f.Close())
}

// csvColumns lists a Record's fields in order, flattening Point, by their
// JSON names.
func csvColumns() []reflect.StructField {
	var out []reflect.StructField
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			f.Index = append(append([]int(nil), index...), i)
			if f.Anonymous {
				walk(f.Type, f.Index)
				continue
			}
			out = append(out, f)
		}
	}
	walk(reflect.TypeFor[Record](), nil)
	return out
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}

func csvHeader() []string {
	var h []string
	for _, f := range csvColumns() {
		h = append(h, jsonName(f))
	}
	return h
}

func csvRow(r Record) []string {
	v := reflect.ValueOf(r)
	var row []string
	for _, f := range csvColumns() {
		fv := v.FieldByIndex(f.Index)
		switch fv.Kind() {
		case reflect.Float64:
			row = append(row, strconv.FormatFloat(fv.Float(), 'g', -1, 64))
		case reflect.Int, reflect.Int64:
			row = append(row, strconv.FormatInt(fv.Int(), 10))
		case reflect.Bool:
			row = append(row, strconv.FormatBool(fv.Bool()))
		default:
			row = append(row, fv.String())
		}
	}
	return row
}

// ReadRecords reads a records file written by RecordWriter (JSON lines or
// CSV, told apart by the first byte).
func ReadRecords(r io.Reader) ([]Record, error) {
	br := bufio.NewReader(r)
	first, err := br.Peek(1)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	if first[0] == '{' {
		var out []Record
		dec := json.NewDecoder(br)
		for {
			var rec Record
			if err := dec.Decode(&rec); errors.Is(err, io.EOF) {
				return out, nil
			} else if err != nil {
				return out, fmt.Errorf("record %d: %w", len(out)+1, err)
			}
			out = append(out, rec)
		}
	}
	cr := csv.NewReader(br)
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("csv header: %w", err)
	}
	byName := map[string]reflect.StructField{}
	for _, f := range csvColumns() {
		byName[jsonName(f)] = f
	}
	var out []Record
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("csv row %d: %w", len(out)+2, err)
		}
		var rec Record
		v := reflect.ValueOf(&rec).Elem()
		for i, name := range head {
			f, ok := byName[name]
			if !ok || i >= len(row) {
				continue
			}
			fv := v.FieldByIndex(f.Index)
			switch fv.Kind() {
			case reflect.Float64:
				x, err := strconv.ParseFloat(row[i], 64)
				if err != nil {
					return out, fmt.Errorf("csv row %d, %s: %w", len(out)+2, name, err)
				}
				fv.SetFloat(x)
			case reflect.Int, reflect.Int64:
				x, err := strconv.ParseInt(row[i], 10, 64)
				if err != nil {
					return out, fmt.Errorf("csv row %d, %s: %w", len(out)+2, name, err)
				}
				fv.SetInt(x)
			case reflect.Bool:
				fv.SetBool(row[i] == "true")
			default:
				fv.SetString(row[i])
			}
		}
		out = append(out, rec)
	}
}
