// Package workload holds ferry's CPU workloads: pure, deterministic functions
// from documents to results, looked up by name. It knows nothing of NATS,
// codecs or execution modes; every mode calls the same Process, which is what
// makes results bit-identical across serial, goroutines and processes.
package workload

import (
	"errors"
	"fmt"
	"sort"
)

// ErrUnknown is returned by New for a name that is not registered.
var ErrUnknown = errors.New("workload: unknown workload")

// Span is one window of a document produced by the chunk workload.
type Span struct {
	Doc    uint32 // position of the document within the batch
	Start  uint32 // byte offset of the first byte of the window
	End    uint32 // byte offset one past the last byte
	Tokens uint32 // tokens in the window
}

// Output is the columnar result of a workload over one batch of documents.
// Columns a workload does not produce stay empty. Callers Reset and reuse it.
type Output struct {
	Dim    int       // vector width; Vecs holds Dim float32 per document
	Vecs   []float32 // row-major, one row per document, in document order
	Spans  []Span    // chunk windows in document order
	Stride int       // bytes per document in Data
	Data   []byte    // opaque per-document payload (spin --out-bytes), Stride per document
}

// Bytes is the size of o's payload in memory: vectors, spans and data.
func (o *Output) Bytes() int {
	return 4*len(o.Vecs) + 16*len(o.Spans) + len(o.Data)
}

// Reset empties out and keeps its capacity.
func (o *Output) Reset() {
	o.Dim, o.Stride = 0, 0
	o.Vecs, o.Spans, o.Data = o.Vecs[:0], o.Spans[:0], o.Data[:0]
}

// Params configures the workloads. The zero value of every field means its
// default; Params travels with each batch so workers build the same workload.
type Params struct {
	Dim          int    `msgpack:"dim"`           // embedding/infer width; 0 = 384
	ChunkTokens  int    `msgpack:"chunk_tokens"`  // chunk window in tokens; 0 = 256
	ChunkOverlap int    `msgpack:"chunk_overlap"` // tokens shared by neighbouring windows; 0 = min(32, chunk_tokens/8)
	SpinCostNs   int64  `msgpack:"spin_cost_ns"`  // spin CPU per document in ns; 0 = 200us
	OutBytes     int    `msgpack:"out_bytes"`     // spin output bytes per document; 0 = 16
	Seed         uint64 `msgpack:"seed"`          // model weights seed (infer); 0 = 1
	PanicOn      string `msgpack:"panic_on"`      // test hook: panic on a document with this exact text; "" = never
}

// Workload computes results for a batch of documents.
type Workload interface {
	// Name is the registry name, e.g. "embed".
	Name() string
	// Process appends the results for docs to out (which the caller has Reset).
	// It must be deterministic: the same docs give the same bytes on any machine
	// with the same GOARCH. It may panic on a hostile document; callers recover.
	Process(docs []string, out *Output) error
}

// Flopper is implemented by workloads whose cost is counted in floating
// point operations (infer), so reports can print GFLOP/s.
type Flopper interface {
	// FLOPs is the floating point operations Process spends on docs documents.
	FLOPs(docs int) float64
}

// Factory builds a workload from validated params with defaults filled in.
type Factory func(p Params) (Workload, error)

// registry is the one place a workload name maps to its constructor.
var registry = map[string]Factory{
	"chunk": newChunk,
	"embed": newEmbed,
	"infer": newInfer,
	"noop":  newNoop,
	"sleep": newSleep,
	"spin":  newSpin,
}

// New builds the named workload.
func New(name string, p Params) (Workload, error) {
	f, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %v)", ErrUnknown, name, Names())
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return f(p.WithDefaults())
}

// Names lists the registered workloads, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
