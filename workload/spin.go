package workload

import (
	"encoding/binary"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// spin burns SpinCostNs of CPU per document on a dependent chain of integer
// mixing, then emits OutBytes of hash of the text. It isolates the process
// boundary's overhead: a known, adjustable cost per document and a payload
// size chosen independently of it.
//
// The iteration count comes from a per-process calibration, so it differs
// between machines and runs; the output therefore depends only on the text,
// never on how many iterations ran.
type spin struct {
	costNs   int64
	outBytes int
}

func newSpin(p Params) (Workload, error) {
	return &spin{costNs: p.SpinCostNs, outBytes: p.OutBytes}, nil
}

func (s *spin) Name() string { return "spin" }

// ResultBytes is OutBytes per document.
func (s *spin) ResultBytes(docs []string) int64 { return int64(s.outBytes) * int64(len(docs)) }

// spinSink keeps the compiler from dropping the loop as dead code.
var spinSink atomic.Uint64

// Process appends OutBytes per document to out.Data (Stride = OutBytes).
func (s *spin) Process(docs []string, out *Output) error {
	iters := int64(float64(s.costNs) * SpinIterationsPerUs() / 1000)
	out.Stride = s.outBytes
	for _, d := range docs {
		h := fnv1aString(d)
		spinSink.Store(spinLoop(h, iters))
		out.Data = appendExpanded(out.Data, h, s.outBytes)
	}
	return nil
}

// spinLoop is a serial dependency chain (each step needs the last), so its
// speed is set by the multiplier latency and is steady across runs.
func spinLoop(x uint64, n int64) uint64 {
	for ; n > 0; n-- {
		x ^= x >> 31
		x *= 0x9e3779b97f4a7c15
	}
	return x
}

func fnv1aString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// appendExpanded appends n bytes of the splitmix64 stream seeded by h.
func appendExpanded(dst []byte, h uint64, n int) []byte {
	r := splitmix64(h)
	var w [8]byte
	for n > 0 {
		binary.LittleEndian.PutUint64(w[:], r.next())
		k := min(n, 8)
		dst = append(dst, w[:k]...)
		n -= k
	}
	return dst
}

var calibration struct {
	once  sync.Once
	perUs float64
}

// SpinRateEnv names the environment variable that pins the calibration to
// a number of iterations per microsecond. A parent sets it for the worker
// processes it starts, so every process spins the same iterations per
// document: calibrated separately on a busy machine, workers can spin a
// third of what the parent does, and modes would no longer compare.
const SpinRateEnv = "FERRY_SPIN_RATE"

// SpinIterationsPerUs is how many spinLoop iterations this process runs per
// microsecond; spin uses it to turn SpinCostNs into work. It calibrates on
// first use (about 25 ms), unless SpinRateEnv holds a positive rate, and
// then returns the cached figure, so reports can print the achieved cost
// next to the requested one.
func SpinIterationsPerUs() float64 {
	calibration.once.Do(func() {
		if v, err := strconv.ParseFloat(os.Getenv(SpinRateEnv), 64); err == nil && v > 0 && !math.IsInf(v, 0) {
			calibration.perUs = v
			return
		}
		calibration.perUs = calibrate()
	})
	return calibration.perUs
}

// calibrate times five 5 ms runs and keeps the fastest: interruptions only
// ever slow a run down, so the best is the truest rate of an idle core.
func calibrate() float64 {
	const chunk = 1 << 14
	best := 0.0
	x := uint64(1)
	for range 5 {
		start := time.Now()
		n := 0
		for time.Since(start) < 5*time.Millisecond {
			x = spinLoop(x, chunk)
			n += chunk
		}
		if rate := float64(n) / float64(time.Since(start).Microseconds()); rate > best {
			best = rate
		}
	}
	spinSink.Store(x)
	return best
}
