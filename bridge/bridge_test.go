package bridge_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferrylab/ferry/bridge"
	"github.com/ferrylab/ferry/workload"
)

// envChild makes the test binary an exec program: "<workload>" serves it,
// "<workload>,crash" exits on a document "crash" and "<workload>,hang"
// sleeps on a document "hang" before serving, "garbage" answers with bytes
// that are no frame.
const envChild = "FERRY_BRIDGE_TEST_CHILD"

// upper is a workload with bytes of any length per document, failing
// documents it can name ("bad") without panicking.
var upper = workload.Def{Name: "upper", New: func(workload.Params) (workload.Workload, error) {
	return workload.Func("upper", func(docs []string, out *workload.Output) error {
		var failed workload.DocErrors
		for i, d := range docs {
			if d == "bad" {
				failed = append(failed, workload.DocError{Doc: uint32(i), Msg: "bad document"})
			}
			if err := out.AppendDoc([]byte(strings.ToUpper(d))); err != nil {
				return err
			}
		}
		if failed != nil {
			return failed
		}
		return nil
	}), nil
}}

func TestMain(m *testing.M) {
	if err := workload.Register(upper); err != nil {
		panic(err)
	}
	if spec := os.Getenv(envChild); spec != "" {
		os.Exit(child(spec))
	}
	os.Exit(m.Run())
}

func child(spec string) int {
	if spec == "garbage" {
		os.Stdout.WriteString("this is not a frame, it is a print statement\n")
		time.Sleep(time.Minute)
		return 0
	}
	name, how, _ := strings.Cut(spec, ",")
	r := &tripwire{how: how}
	if err := bridge.Serve(r, os.Stdout, bridge.ServeConfig{Workload: name}); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// tripwire reads stdin and crashes or hangs when it carries the text how.
type tripwire struct{ how string }

func (t *tripwire) Read(p []byte) (int, error) {
	n, err := os.Stdin.Read(p)
	if t.how != "" && bytes.Contains(p[:n], []byte(t.how)) {
		if t.how == "crash" {
			os.Exit(3)
		}
		time.Sleep(time.Hour)
	}
	return n, err
}

// program is the command line running this test binary as an exec program.
func program(spec string) string {
	return fmt.Sprintf("%s=%s exec %q -test.run=^$", envChild, spec, os.Args[0])
}

func newExec(t testing.TB, spec string, p workload.Params, timeout time.Duration) *bridge.Workload {
	t.Helper()
	pool := bridge.NewPool(bridge.Config{Command: program(spec), Timeout: timeout})
	t.Cleanup(func() { pool.Close() })
	return pool.New(p)
}

func docs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("document %d, a ferry crossing the river with %d cars", i, i*7%50)
	}
	return out
}

func TestExecComputesWhatTheWorkloadDoes(t *testing.T) {
	in := append(docs(50), "", "bad", "ünïcödé", "x")
	for _, tc := range []struct {
		name string
		p    workload.Params
	}{
		{"embed", workload.Params{Dim: 32}},
		{"chunk", workload.Params{ChunkTokens: 4}},
		{"spin", workload.Params{SpinCostNs: 1000, OutBytes: 24}},
		{"upper", workload.Params{}},
	} {
		t.Run("workload="+tc.name, func(t *testing.T) {
			compiled, err := workload.New(tc.name, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			var want, got workload.Output
			wantErrs, err := workload.ComputeBatch(compiled, in, &want, nil)
			if err != nil {
				t.Fatal(err)
			}
			exec := newExec(t, tc.name, tc.p, 0)
			for range 2 { // the second batch reuses the child and the buffers
				gotErrs, err := workload.ComputeBatch(exec, in, &got, nil)
				if tc.name == "chunk" {
					if !errors.Is(err, workload.ErrBatchFailed) || !strings.Contains(err.Error(), "spans") {
						t.Fatalf("chunk over exec: err = %v, want a batch failure naming spans", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got.Vecs, want.Vecs) || !bytes.Equal(got.Data, want.Data) || !slices.Equal(got.Ends, want.Ends) ||
					got.Dim != want.Dim || got.Stride != want.Stride {
					t.Fatalf("exec output differs from the compiled workload's")
				}
				if !slices.Equal(gotErrs, wantErrs) {
					t.Fatalf("errs = %+v, want %+v", gotErrs, wantErrs)
				}
				if got.Hop <= 0 {
					t.Errorf("hop = %v, want the pipe's time", got.Hop)
				}
			}
		})
	}
}

// A program that dies, hangs or talks nonsense fails the batch as a whole
// (the coordinator retries it) and is replaced for the next batch.
func TestExecFailuresFailTheBatchAndRestart(t *testing.T) {
	for _, tc := range []struct {
		name, spec, poison, want string
	}{
		{"crash", "embed,crash", "crash", "exited: exit status 3"},
		{"hang", "embed,hang", "hang", "hung"},
		{"garbage", "garbage", "", "over the limit"},
		{"no such program", "", "", "exit status 127"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := program(tc.spec)
			if tc.spec == "" {
				cmd = "/nonexistent/program"
			}
			pool := bridge.NewPool(bridge.Config{Command: cmd, Timeout: time.Second, Stderr: &bytes.Buffer{}})
			t.Cleanup(func() { pool.Close() })
			w := pool.New(workload.Params{Dim: 8})
			var out workload.Output
			start := time.Now()
			_, err := workload.ComputeBatch(w, []string{"fine", tc.poison}, &out, nil)
			if !errors.Is(err, workload.ErrBatchFailed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrBatchFailed with %q", err, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("failure took %v", d)
			}
			if tc.poison == "" {
				return
			}
			if _, err := workload.ComputeBatch(w, []string{"fine", "again"}, &out, nil); err != nil {
				t.Fatalf("next batch after a %s: %v", tc.name, err)
			}
			if got, want := len(out.Vecs), 16; got != want {
				t.Errorf("next batch: %d floats, want %d", got, want)
			}
		})
	}
}

func TestExecWithoutProgram(t *testing.T) {
	d := bridge.NewPool(bridge.Config{}).Def()
	w, err := d.New(workload.Params{})
	if err != nil {
		t.Fatalf("building without a program must work (a coordinator validates its job): %v", err)
	}
	var out workload.Output
	if _, err := workload.ComputeBatch(w, []string{"x"}, &out, nil); !errors.Is(err, workload.ErrBatchFailed) || !strings.Contains(err.Error(), "--exec") {
		t.Fatalf("err = %v, want a batch failure naming --exec", err)
	}
}

// BenchmarkExec compares a batch computed by the workload compiled in with
// the same batch through an exec program serving it, and reports the
// pipe's share: the per-batch cost of running a workload out of process.
func BenchmarkExec(b *testing.B) {
	for _, batch := range []int{1, 100} {
		in := docs(batch)
		compiled, err := workload.New("embed", workload.Params{})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("how=compiled/batch=%d", batch), func(b *testing.B) {
			var out workload.Output
			b.ReportAllocs()
			for b.Loop() {
				if _, err := workload.ComputeBatch(compiled, in, &out, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("how=exec/batch=%d", batch), func(b *testing.B) {
			w := newExec(b, "embed", workload.Params{}, 0)
			var out workload.Output
			if _, err := workload.ComputeBatch(w, in, &out, nil); err != nil { // start the child
				b.Fatal(err)
			}
			var hop time.Duration
			b.ReportAllocs()
			for b.Loop() {
				if _, err := workload.ComputeBatch(w, in, &out, nil); err != nil {
					b.Fatal(err)
				}
				hop += out.Hop
			}
			b.ReportMetric(float64(hop.Microseconds())/float64(b.N), "pipe_us/op")
		})
	}
}
