package workload

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// poisoned computes embed, or per-document bytes with ends, and panics,
// fails some documents by name, or fails the batch on a document.
type poisoned struct {
	inner Workload
	ends  bool
	how   string // "panic", "docerrors" or "batch"
}

func (p *poisoned) Name() string { return "poisoned" }

func (p *poisoned) Process(docs []string, out *Output) error {
	var failed DocErrors
	for i, d := range docs {
		if d != "poison" {
			continue
		}
		switch p.how {
		case "panic":
			panic("poison")
		case "batch":
			return fmt.Errorf("child died: %w", ErrBatchFailed)
		}
		failed = append(failed, DocError{Doc: uint32(i), Msg: "poison"})
	}
	if p.ends {
		for _, d := range docs {
			if d == "poison" {
				d = ""
			}
			if err := out.AppendDoc([]byte(strings.ToUpper(d))); err != nil {
				return err
			}
		}
	} else if err := p.inner.Process(docs, out); err != nil {
		return err
	}
	if failed != nil {
		return failed
	}
	return nil
}

func TestComputeIsolatesBadDocuments(t *testing.T) {
	docs := []string{"a b", "poison", "c d e", "poison", "f"}
	for _, how := range []string{"panic", "docerrors"} {
		for _, ends := range []bool{false, true} {
			t.Run(fmt.Sprintf("how=%s/ends=%v", how, ends), func(t *testing.T) {
				wl := &poisoned{inner: mustNew(t, "embed", Params{Dim: 8}), ends: ends, how: how}
				var out Output
				errs, err := ComputeBatch(wl, docs, &out, nil)
				if err != nil {
					t.Fatal(err)
				}
				if got := []uint32{errs[0].Doc, errs[1].Doc}; len(errs) != 2 || !slices.Equal(got, []uint32{1, 3}) {
					t.Fatalf("errs = %+v, want documents 1 and 3", errs)
				}
				if ends {
					if got, want := len(out.Ends), len(docs); got != want {
						t.Fatalf("ends = %d, want %d", got, want)
					}
					for i, d := range docs {
						want := strings.ToUpper(d)
						if d == "poison" {
							want = ""
						}
						if got := string(out.Doc(i)); got != want {
							t.Errorf("doc %d = %q, want %q", i, got, want)
						}
					}
					return
				}
				if got, want := len(out.Vecs), 8*len(docs); got != want {
					t.Fatalf("vecs = %d floats, want %d", got, want)
				}
				for _, i := range []int{1, 3} {
					if slices.ContainsFunc(out.Vecs[8*i:8*i+8], func(f float32) bool { return f != 0 }) {
						t.Errorf("row %d of a failed document is not zero", i)
					}
				}
			})
		}
	}
}

func TestComputeBatchFailsAsAWhole(t *testing.T) {
	wl := &poisoned{inner: mustNew(t, "embed", Params{Dim: 8}), how: "batch"}
	var out Output
	errs, err := ComputeBatch(wl, []string{"a", "poison", "b"}, &out, nil)
	if !errors.Is(err, ErrBatchFailed) || len(errs) != 0 {
		t.Fatalf("ComputeBatch = %v, %v; want ErrBatchFailed and no document errors", errs, err)
	}
	// Compute has no one to retry the batch: every document fails.
	errs = Compute(wl, []string{"a", "poison", "b"}, &out, nil)
	if len(errs) != 3 || !strings.Contains(errs[2].Msg, "child died") {
		t.Fatalf("Compute errs = %+v, want all three failed with the batch's error", errs)
	}
}

func TestAppendValueRoundTrips(t *testing.T) {
	type sig struct {
		Lang  string
		Score float64
		Hits  []uint32
	}
	in := []sig{{"en", 0.5, []uint32{1, 2}}, {}, {"fr", -1, nil}}
	var out Output
	for _, v := range in {
		if err := AppendValue(&out, v); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range in {
		got, err := Value[sig](&out, i)
		if err != nil {
			t.Fatal(err)
		}
		if got.Lang != want.Lang || got.Score != want.Score || !slices.Equal(got.Hits, want.Hits) {
			t.Errorf("value %d = %+v, want %+v", i, got, want)
		}
	}
}
