package workload

import "time"

// sleep emulates compute: it produces spin's result bytes (OutBytes of hash
// of each document's text, the same bytes spin gives) and then waits until
// SpinCostNs per document of wall time has passed since the batch began,
// instead of burning CPU. A worker running it holds its batch as long as a
// core computing it would, and uses almost no CPU, so 64 or more worker
// processes on a 2-core machine behave like remote cores: the CPU measured
// then belongs to the coordinator, the broker and the transport. Its runs
// are reported as emulated (Emulator).
//
// The wait is a timer: on Linux it overshoots by tens of microseconds, more
// on a loaded machine, so costs well below a millisecond per batch are
// stretched (ferry capacity measures the overshoot and accounts for it).
type sleep struct {
	costNs   int64
	outBytes int
}

func newSleep(p Params) (Workload, error) {
	return &sleep{costNs: p.SpinCostNs, outBytes: p.OutBytes}, nil
}

func (s *sleep) Name() string { return "sleep" }

// ResultBytes is OutBytes per document.
func (s *sleep) ResultBytes(docs []string) int64 { return int64(s.outBytes) * int64(len(docs)) }

// Emulated reports that sleep waits instead of computing.
func (s *sleep) Emulated() bool { return true }

// Process appends OutBytes per document to out.Data (Stride = OutBytes),
// then waits out the rest of SpinCostNs per document.
func (s *sleep) Process(docs []string, out *Output) error {
	start := time.Now()
	out.Stride = s.outBytes
	for _, d := range docs {
		out.Data = appendExpanded(out.Data, fnv1aString(d), s.outBytes)
	}
	time.Sleep(time.Until(start.Add(time.Duration(int64(len(docs)) * s.costNs))))
	return nil
}

// Emulator is implemented by workloads whose compute is emulated (sleep):
// the result bytes are real, the time is a wait, not CPU. Reports mark
// runs of such a workload as emulated.
type Emulator interface {
	Emulated() bool
}
