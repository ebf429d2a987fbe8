// Package workload holds ferry's CPU workloads: pure, deterministic functions
// from documents to results, looked up by name. It knows nothing of NATS,
// codecs or execution modes; every mode calls the same Process, which is what
// makes results bit-identical across serial, goroutines and processes.
package workload

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
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
//
// Bytes per document come in two shapes: Stride bytes each (Stride > 0),
// or any number each, document i's being Data[Ends[i-1]:Ends[i]] (Ends
// holds one entry per document; AppendDoc and AppendValue write it).
type Output struct {
	Dim    int       // vector width; Vecs holds Dim float32 per document
	Vecs   []float32 // row-major, one row per document, in document order
	Spans  []Span    // chunk windows in document order
	Stride int       // bytes per document in Data; 0 with Ends, or no Data
	Data   []byte    // opaque per-document payload: Stride per document, or up to each of Ends
	Ends   []uint32  // with Stride 0: where each document's bytes end in Data
	// Hop is the part of Process's time spent carrying the batch to where
	// it was computed and back (an exec workload's pipe), not computing;
	// 0 for workloads that compute in this process. Not on the wire.
	Hop time.Duration `msgpack:"-"`
}

// Bytes is the size of o's payload in memory: vectors, spans and data.
func (o *Output) Bytes() int {
	return 4*len(o.Vecs) + 16*len(o.Spans) + len(o.Data) + 4*len(o.Ends)
}

// Reset empties out and keeps its capacity.
func (o *Output) Reset() {
	o.Dim, o.Stride, o.Hop = 0, 0, 0
	o.Vecs, o.Spans, o.Data, o.Ends = o.Vecs[:0], o.Spans[:0], o.Data[:0], o.Ends[:0]
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
	// Args are the workload's own parameters (Def.Params), set with
	// --param key=value; "" = none, every one at its default.
	Args Args `msgpack:"args"`
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

// registry is the one place a workload name maps to its definition: the
// built-in workloads, and what Register adds before the work starts (a
// binary's main, through ferry.Main, and the command line's exec).
var registry = struct {
	sync.RWMutex
	m map[string]Def
}{m: map[string]Def{
	"chunk": {Name: "chunk", Doc: "token windows with overlap, as byte offsets", New: newChunk},
	"embed": {Name: "embed", Doc: "feature-hashing embeddings, L2-normalised float32", New: newEmbed},
	"infer": {Name: "infer", Doc: "hashed features through a small MLP", New: newInfer},
	"noop":  {Name: "noop", Doc: "no compute: echoes out_bytes per document (isolates the wire)", New: newNoop},
	"sleep": {Name: "sleep", Doc: "emulated compute: spin's result bytes, then a wall-clock wait of spin_cost per document", New: newSleep},
	"spin":  {Name: "spin", Doc: "a calibrated CPU cost per document", New: newSpin},
}}

// ErrDuplicate is returned by Register for a name already registered.
var ErrDuplicate = errors.New("workload: name already registered")

// Register adds workloads to this process's registry, so every mode, every
// worker process of this executable and the command line find them by
// name. Call it before any work starts (ferry.Main does); it fails on an
// invalid definition or a name already taken, and then registers none.
func Register(defs ...Def) error {
	registry.Lock()
	defer registry.Unlock()
	seen := map[string]bool{}
	for _, d := range defs {
		if err := d.validate(); err != nil {
			return err
		}
		if _, ok := registry.m[d.Name]; ok || seen[d.Name] {
			return fmt.Errorf("%w: %q", ErrDuplicate, d.Name)
		}
		seen[d.Name] = true
	}
	for _, d := range defs {
		registry.m[d.Name] = d
	}
	return nil
}

// Lookup returns the definition registered under name.
func Lookup(name string) (Def, bool) {
	registry.RLock()
	defer registry.RUnlock()
	d, ok := registry.m[name]
	return d, ok
}

// New builds the named workload from p, after checking the built-in fields
// of p and its Args against the workload's declared parameters.
func New(name string, p Params) (Workload, error) {
	d, ok := Lookup(name)
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %v)", ErrUnknown, name, Names())
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if _, err := d.values(p.Args); err != nil {
		return nil, err
	}
	return d.New(p.WithDefaults())
}

// Names lists the registered workloads, sorted.
func Names() []string {
	registry.RLock()
	defer registry.RUnlock()
	names := make([]string, 0, len(registry.m))
	for n := range registry.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
