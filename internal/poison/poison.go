// Package poison is a workload for tests only: it computes another
// workload and panics on a document with a given text, as a model that
// crashes on one input would. Fault tests use it to prove that such a
// document is isolated and reported by index in every mode. It replaces
// the panic_on hook that once travelled in every batch's params: a test
// binary registers it (Register), and the fault tests' worker processes
// are a ferry binary that has it (ferrypoison).
package poison

import (
	"fmt"
	"sync"

	"github.com/ferrylab/ferry/workload"
)

// Name is the workload's registry name.
const Name = "poison"

// Workload computes the workload named by param of (default embed) with
// the batch's other params, and panics on a document whose text is
// exactly param panic_on before computing anything.
var Workload = workload.Def{
	Name: Name,
	Doc:  "test only: another workload that panics on one document",
	Params: []workload.Param{
		{Key: "panic_on", Kind: workload.String, Default: "", Doc: "panic on a document with exactly this text"},
		{Key: "of", Kind: workload.String, Default: "embed", Max: 64, Doc: "the workload computing the documents"},
	},
	New: build,
}

func build(p workload.Params) (workload.Workload, error) {
	m, err := p.Args.Map()
	if err != nil {
		return nil, err
	}
	of, _ := m["of"].(string)
	if of == "" {
		of = "embed"
	}
	if of == Name {
		return nil, fmt.Errorf("%w: param of=%s: poison cannot wrap itself", workload.ErrInvalidParams, of)
	}
	text, _ := m["panic_on"].(string)
	p.Args = ""
	inner, err := workload.New(of, p)
	if err != nil {
		return nil, err
	}
	return &poisoned{inner: inner, text: text}, nil
}

type poisoned struct {
	inner workload.Workload
	text  string
}

func (w *poisoned) Name() string { return Name }

func (w *poisoned) Process(docs []string, out *workload.Output) error {
	for i, d := range docs {
		if w.text != "" && d == w.text {
			panic(fmt.Sprintf("workload %s: poison document %d matches panic_on %q", Name, i, w.text))
		}
	}
	return w.inner.Process(docs, out)
}

// Args are the batch args that make the workload of panic on text.
func Args(text, of string) workload.Args {
	a, err := workload.MakeArgs(map[string]any{"panic_on": text, "of": of})
	if err != nil {
		panic(err) // a test's own text over the length limit
	}
	return a
}

var registered = sync.OnceValue(func() error { return workload.Register(Workload) })

// Register adds the workload to this process's registry; later calls do
// nothing. A test binary calls it before it starts workers (TestMain).
func Register() error { return registered() }
