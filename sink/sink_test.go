package sink

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrylab/ferry/workload"
)

// readNPY returns the shape and the float32 data of a .npy file.
func readNPY(t *testing.T, path string) (header string, data []float32) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b[:6]), "\x93NUMPY"; got != want {
		t.Fatalf("magic = %q", got)
	}
	hlen := int(binary.LittleEndian.Uint16(b[8:10]))
	if got, want := 10+hlen, npyHeaderLen; got != want || (10+hlen)%64 != 0 {
		t.Fatalf("header length %d, want %d (a multiple of 64)", got, want)
	}
	for i := npyHeaderLen; i < len(b); i += 4 {
		data = append(data, math.Float32frombits(binary.LittleEndian.Uint32(b[i:])))
	}
	return string(b[10 : 10+hlen]), data
}

// sameRows compares float32 rows, NaN equal to NaN.
func sameRows(got, want []float32) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range want {
		if got[i] != want[i] && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want[i]))) {
			return false
		}
	}
	return true
}

// TestNPYKeepsOneRowPerDocument: row i of the matrix is input document i.
// A failed document's row is NaN, even when it fails before any document
// has told the width (a batch that failed whole), and failed.jsonl lists
// each failure by index with its error.
func TestNPYKeepsOneRowPerDocument(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.npy")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	nan := float32(math.NaN())
	writes := []struct {
		first  int64
		out    workload.Output
		failed []bool
		errs   []workload.DocError
	}{
		{0, workload.Output{}, []bool{true}, []workload.DocError{{Doc: 0, Msg: "no reply in time"}}},
		{1, workload.Output{Dim: 3, Vecs: []float32{1, 2, 3, 4, 5, 6}}, []bool{false, false}, nil},
		{3, workload.Output{Dim: 3, Vecs: []float32{7, 8, 9, 0, 0, 0, 10, 11, 12}}, []bool{false, true, false},
			[]workload.DocError{{Doc: 1, Msg: "workload spin panicked: boom"}}},
	}
	for _, wr := range writes {
		if wr.errs != nil {
			if err := w.WriteFailures(wr.first, wr.errs); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Write(wr.first, &wr.out, wr.failed); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	header, got := readNPY(t, path)
	if !strings.Contains(header, "'shape': (6, 3)") || !strings.HasSuffix(header, "\n") {
		t.Errorf("header = %q, want shape (6, 3)", header)
	}
	want := []float32{nan, nan, nan, 1, 2, 3, 4, 5, 6, 7, 8, 9, nan, nan, nan, 10, 11, 12}
	if !sameRows(got, want) {
		t.Fatalf("rows = %v, want %v", got, want)
	}
	b, err := os.ReadFile(path + ".failed.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"index":0,"error":"no reply in time"}
{"index":4,"error":"workload spin panicked: boom"}
`; got != want {
		t.Errorf("failed.jsonl =\n%s\nwant\n%s", got, want)
	}
}

// A run with no failures leaves no failures file, and removes one that an
// earlier run left for the output it replaces.
func TestNoFailuresNoFailuresFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.npy")
	if err := os.WriteFile(path+".failed.jsonl", []byte(`{"index":3,"error":"old"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(0, &workload.Output{Dim: 1, Vecs: []float32{1}}, []bool{false}); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".failed.jsonl"); !os.IsNotExist(err) {
		t.Errorf("stale failures file still there (stat err %v)", err)
	}
}

// Every document failed: the width is never known, and the matrix has one
// empty row per document.
func TestNPYAllFailed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.npy")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(0, &workload.Output{}, []bool{true, true}); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if header, data := readNPY(t, path); !strings.Contains(header, "'shape': (2, 0)") || len(data) != 0 {
		t.Errorf("header %q with %d values, want shape (2, 0) and no data", header, len(data))
	}
}

func TestNPYRefusesNonVectorWorkloads(t *testing.T) {
	w, err := Create(filepath.Join(t.TempDir(), "c.npy"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	err = w.Write(0, &workload.Output{Spans: []workload.Span{{Doc: 0, End: 3, Tokens: 1}}}, []bool{false})
	if err == nil || !strings.Contains(err.Error(), ".jsonl") {
		t.Errorf("err = %v, want a hint to use .jsonl", err)
	}
}

func TestJSONLRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.jsonl")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	out := &workload.Output{Spans: []workload.Span{{Doc: 0, Start: 0, End: 5, Tokens: 1}, {Doc: 2, Start: 0, End: 9, Tokens: 2}, {Doc: 2, Start: 4, End: 9, Tokens: 1}}}
	if err := w.Write(10, out, []bool{false, true, false}); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	var recs []record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 2 || recs[0].Index != 10 || recs[1].Index != 12 || len(recs[1].Spans) != 2 || len(recs[0].Spans) != 1 {
		t.Errorf("records = %+v", recs)
	}
}

func TestCreateRejectsUnknownExtension(t *testing.T) {
	if _, err := Create(filepath.Join(t.TempDir(), "x.parquet")); err == nil {
		t.Error("want an error for .parquet")
	}
}

// The bytes are pinned: ferry's users parse these files.
func TestJSONLBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.jsonl")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	out := &workload.Output{Dim: 2, Vecs: []float32{0.5, -1, 0, 0, 3, 4}}
	if err := w.Write(7, out, []bool{false, true, false}); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"index":7,"vec":[0.5,-1]}`+"\n"+`{"index":9,"vec":[3,4]}`+"\n"; got != want {
		t.Errorf("file = %q, want %q", got, want)
	}
}

func TestJSONLines(t *testing.T) {
	tests := []struct {
		name string
		recs []any
		want string
	}{
		{name: "none", recs: nil, want: ""},
		{name: "records", recs: []any{
			struct {
				Index int64  `json:"index"`
				Note  string `json:"note,omitempty"`
			}{Index: 1, Note: "a <b> & c"},
			map[string]int{"n": 2},
		}, want: `{"index":1,"note":"a \u003cb\u003e \u0026 c"}` + "\n" + `{"n":2}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "d.jsonl")
			w, err := CreateJSONLines(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range tt.recs {
				if err := w.Encode(r); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b); got != tt.want {
				t.Errorf("file = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWriteFunc(t *testing.T) {
	var got []int64
	var w Writer = WriteFunc(func(first int64, _ *workload.Output, failed []bool) error {
		got = append(got, first, int64(len(failed)))
		return nil
	})
	if err := w.Write(3, &workload.Output{}, []bool{false, true}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != 3 || got[1] != 2 {
		t.Errorf("Write saw %v, want [3 2]", got)
	}
}

// TestFailedRunKeepsEarlierOutput: an output is renamed onto its path only
// on Commit; Close without it leaves the earlier file untouched and the
// partial result beside it, with a valid .npy header.
func TestFailedRunKeepsEarlierOutput(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "good.npy")
	if err := os.WriteFile(path, []byte("earlier results"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	out := &workload.Output{Dim: 2, Vecs: []float32{1, 2}}
	if err := w.Write(0, out, []bool{false}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "earlier results" {
		t.Errorf("%s = %q after a failed run, want the earlier results", path, got)
	}
	partial, err := os.ReadFile(w.Partial())
	if err != nil {
		t.Fatalf("partial output: %v", err)
	}
	if !strings.HasPrefix(string(partial), "\x93NUMPY") || !strings.Contains(string(partial), "'shape': (1, 2)") {
		t.Errorf("partial %q: want an .npy header of shape (1, 2)", partial[:min(len(partial), 80)])
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("folder holds %d files, want the output and its partial (no temporary left)", len(entries))
	}
}
