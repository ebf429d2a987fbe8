package faulttest

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/internal/natstest"
	ferrypoison "github.com/ferrylab/ferry/internal/poison"
	"github.com/ferrylab/ferry/sink"
	"github.com/ferrylab/ferry/workload"
)

// TestNPYFailedDocumentsKeepTheirRows: more documents fail than the report
// keeps (1,000), on real worker processes, into a .npy output. Row i of the
// matrix is still input document i: failed rows are NaN, every good row
// equals a serial run's, and <out>.failed.jsonl lists every failure by
// index, past the report's cap.
func TestNPYFailedDocumentsKeepTheirRows(t *testing.T) {
	const n, workers, dim = 3000, 2, 8
	r := rng(t)
	d := docs(n)
	poison := "poison document"
	bad := map[int]bool{}
	for len(bad) < 1200 {
		i := r.IntN(n)
		bad[i] = true
		d[i] = poison
	}
	cfg := coordinator.Config{Workload: ferrypoison.Name, Params: workload.Params{Dim: dim, Args: ferrypoison.Args(poison, "embed")}, BatchSize: 50, InFlight: 2}

	b := natstest.NewBroker(t, broker.Options{})
	pool(t, b.URL(), workers, false)
	nc := connect(t, b.URL(), "ferry-coordinator")
	dir := t.TempDir()
	out := filepath.Join(dir, "vecs.npy")
	f, err := sink.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	st, err := run(context.Background(), t, nc, cfg, workers, corpus.Slice(d), f, nil)
	if !errors.Is(err, coordinator.ErrDocsFailed) {
		f.Close()
		t.Fatalf("err = %v, want ErrDocsFailed", err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	t.Logf("npy-failures: docs=%d failed=%d reported=%d wall=%s", st.Docs, len(bad), len(st.Failed), st.Wall.Round(time.Millisecond))

	// The serial run of the same documents, in memory.
	serial := make([][]float32, n)
	local, err := coordinator.NewLocal(coordinator.ModeSerial, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = coordinator.Run(context.Background(), cfg, corpus.Slice(d), local, sink.WriteFunc(func(first int64, o *workload.Output, failed []bool) error {
		for i, fl := range failed {
			if !fl {
				serial[first+int64(i)] = append([]float32(nil), o.Vecs[i*o.Dim:(i+1)*o.Dim]...)
			}
		}
		return nil
	}))
	if !errors.Is(err, coordinator.ErrDocsFailed) {
		t.Fatalf("serial run: err = %v, want ErrDocsFailed", err)
	}

	rows := readNPYRows(t, out, dim)
	if got, want := len(rows), n; got != want {
		t.Fatalf("%s has %d rows, want one per input document (%d)", out, got, want)
	}
	for i, row := range rows {
		switch {
		case bad[i]:
			for _, v := range row {
				if !math.IsNaN(float64(v)) {
					t.Fatalf("row %d (failed document) = %v, want NaN", i, row)
				}
			}
		case serial[i] == nil:
			t.Fatalf("document %d failed in the serial run", i)
		default:
			for j := range row {
				if row[j] != serial[i][j] {
					t.Fatalf("row %d = %v, want the serial run's %v", i, row, serial[i])
				}
			}
		}
	}

	listed := map[int]bool{}
	fl, err := os.Open(out + ".failed.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	sc := bufio.NewScanner(fl)
	for sc.Scan() {
		var rec struct {
			Index int    `json:"index"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("failed.jsonl line %q: %v", sc.Text(), err)
		}
		if !bad[rec.Index] || rec.Error == "" || listed[rec.Index] {
			t.Fatalf("failed.jsonl lists %+v: not a failed document, no error, or twice", rec)
		}
		listed[rec.Index] = true
	}
	if got, want := len(listed), len(bad); got != want {
		t.Errorf("failed.jsonl lists %d documents, want all %d (the report keeps %d)", got, want, len(st.Failed))
	}
}

// readNPYRows reads a float32 .npy of rows of width dim.
func readNPYRows(t *testing.T, path string, dim int) [][]float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 10 {
		t.Fatalf("%s: %d bytes, not an .npy", path, len(b))
	}
	data := b[10+int(binary.LittleEndian.Uint16(b[8:10])):]
	var rows [][]float32
	for len(data) >= 4*dim {
		row := make([]float32, dim)
		for j := range row {
			row[j] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*j:]))
		}
		rows = append(rows, row)
		data = data[4*dim:]
	}
	return rows
}
