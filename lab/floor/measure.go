package floor

import (
	"context"
	"fmt"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/shm"
	"github.com/ferrylab/ferry/workload"
	"github.com/nats-io/nats.go"
)

// Config says what Measure measures. The zero value of every field is its default.
type Config struct {
	Sizes       []int         // payload sizes in bytes; nil = DefaultSizes()
	RoundTrips  int           // timed round trips per size, each side; 0 = 200
	Warmup      int           // untimed round trips per size, each side, first; 0 = 10
	Timeout     time.Duration // per round trip; 0 = 10s
	EchoSubject string        // the echo responder's subject; "" = EchoSubject
	// Shm, when set, finds the worker's shared-memory endpoint: ferry's
	// round trip over shared memory is timed too, in turn with the other
	// two (Point.Shm). nil = not measured.
	Shm *shm.Registry
}

func (c Config) withDefaults() Config {
	if c.Sizes == nil {
		c.Sizes = DefaultSizes()
	}
	if c.RoundTrips <= 0 {
		c.RoundTrips = 200
	}
	if c.Warmup <= 0 {
		c.Warmup = 10
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.EchoSubject == "" {
		c.EchoSubject = proto.EchoSubject
	}
	return c
}

// DefaultSizes is 64 B to 4 MiB in powers of 4.
func DefaultSizes() []int {
	var s []int
	for n := 64; n <= 4<<20; n *= 4 {
		s = append(s, n)
	}
	return s
}

// Point is one payload size: the raw echo and ferry's round trip, measured
// alternately so both see the same load.
type Point struct {
	Bytes int    // raw echo payload, each way
	Raw   Sample // raw NATS echo round trip
	Ferry Sample // ferry's batch round trip through a worker, noop workload
	// BatchBytes and ResultBytes are ferry's encoded request and reply,
	// shaped to match Bytes as closely as the codec's framing allows.
	BatchBytes, ResultBytes int
	// Stages is ferry's median time per stage (coordinator.Stage order).
	Stages coordinator.Timing
	// Shm is ferry's batch round trip to the same worker over shared
	// memory (--data-plane shm); N = 0 when not measured.
	Shm Sample
	// Python is the same crossing through Python's ProcessPoolExecutor
	// (MeasurePython); N = 0 when not measured.
	Python Sample
}

// PythonRatio is ferry's median round trip over Python's (0 if unmeasured).
func (p Point) PythonRatio() float64 {
	if p.Python.P50 <= 0 {
		return 0
	}
	return float64(p.Ferry.P50) / float64(p.Python.P50)
}

// ShmRatio is ferry's median round trip over shared memory over the raw
// echo's (0 if unmeasured).
func (p Point) ShmRatio() float64 {
	if p.Raw.P50 <= 0 || p.Shm.P50 <= 0 {
		return 0
	}
	return float64(p.Shm.P50) / float64(p.Raw.P50)
}

// Ratio is ferry's median round trip over the raw echo's (0 if unmeasured).
func (p Point) Ratio() float64 {
	if p.Raw.P50 <= 0 {
		return 0
	}
	return float64(p.Ferry.P50) / float64(p.Raw.P50)
}

// Measure times, for each size, cfg.RoundTrips raw echo round trips on nc
// and as many ferry round trips through link (whose worker must be idle),
// one of each in turn, one request in flight at a time.
func Measure(ctx context.Context, nc *nats.Conn, link *coordinator.Link, cfg Config) ([]Point, error) {
	return measure(ctx, nc, link, nil, cfg)
}

// measure is Measure, also timing sl (nil = not) in turn with the others.
func measure(ctx context.Context, nc *nats.Conn, link *coordinator.Link, sl *coordinator.ShmLink, cfg Config) ([]Point, error) {
	cfg = cfg.withDefaults()
	raw, err := NewRaw(nc, cfg.EchoSubject)
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	points := make([]Point, 0, len(cfg.Sizes))
	for _, size := range cfg.Sizes {
		p, err := measureSize(ctx, raw, link, sl, size, cfg)
		if err != nil {
			return points, fmt.Errorf("transport: %d bytes: %w", size, err)
		}
		points = append(points, p)
	}
	return points, nil
}

func measureSize(ctx context.Context, raw *Raw, link *coordinator.Link, sl *coordinator.ShmLink, size int, cfg Config) (Point, error) {
	text, err := payload(size)
	if err != nil {
		return Point{}, err
	}
	batch, err := shape(link.Codec(), size, text)
	if err != nil {
		return Point{}, err
	}
	p := Point{Bytes: size}
	data := []byte(text)
	var rawT, ferryT, shmT times
	var res proto.Result // reused, as processes mode reuses written results
	var stages [coordinator.NumStages]times
	for i := range cfg.Warmup + cfg.RoundTrips {
		timed := i >= cfg.Warmup
		for k := range 2 {
			if (i+k)%2 == 0 { // alternate which side goes first
				t0 := time.Now()
				if _, err := raw.RoundTrip(ctx, data, cfg.Timeout); err != nil {
					return p, err
				}
				if timed {
					rawT.Add(time.Since(t0))
				}
				continue
			}
			batch.ID++
			t0 := time.Now()
			r, err := link.RoundTrip(ctx, batch, &res, cfg.Timeout)
			if err != nil {
				return p, fmt.Errorf("ferry round trip: %w", err)
			}
			d := time.Since(t0)
			if !timed {
				continue
			}
			ferryT.Add(d)
			for s := range coordinator.NumStages {
				stages[s].Add(r.Timing[s])
			}
			p.BatchBytes, p.ResultBytes = r.BytesOut, r.BytesIn
		}
		if sl != nil { // third, as the slowest side is not shared memory's
			batch.ID++
			t0 := time.Now()
			if _, err := sl.RoundTrip(ctx, batch, &res, cfg.Timeout); err != nil {
				return p, fmt.Errorf("ferry round trip over shared memory: %w", err)
			}
			if timed {
				shmT.Add(time.Since(t0))
			}
		}
	}
	p.Raw, p.Ferry = summarise(&rawT), summarise(&ferryT)
	if sl != nil {
		p.Shm = summarise(&shmT)
	}
	for s := range coordinator.NumStages {
		p.Stages[s] = stages[s].Quantile(0.50)
	}
	return p, nil
}

// payload is size bytes of generated English-like text, so compression
// sees realistic input.
func payload(size int) (string, error) {
	g, err := corpus.Generated(corpus.GenConfig{Docs: 1, DocBytes: max(size, 1)})
	if err != nil {
		return "", err
	}
	return g.Doc(0).Text[:size], nil
}

// maxPart bounds one document and one document's output: both limits are 1 MiB.
const maxPart = 1 << 20

// shape builds a noop batch whose encoding with c is size bytes and whose
// result's encoding is size bytes too, as closely as framing allows (a
// 64-byte batch carries about 35 bytes of text). Payloads over 1 MiB are
// split over several documents.
func shape(c proto.Codec, size int, text string) (*proto.Batch, error) {
	k := max(1, (size+maxPart-1)/maxPart)
	b := &proto.Batch{ID: 1, Attempt: 1, Workload: "noop"}
	docLen := size / k
	for range 4 {
		b.Docs = b.Docs[:0]
		for i := range k {
			b.Docs = append(b.Docs, text[i*docLen:(i+1)*docLen])
		}
		enc, err := c.AppendBatch(nil, b)
		if err != nil {
			return nil, err
		}
		diff := len(enc) - size
		if diff == 0 {
			break
		}
		docLen = min(maxPart, len(text)/k, max(0, docLen-ceilDiv(diff, k)))
	}
	out := max(1, size/k)
	for range 4 {
		res := proto.Result{BatchID: b.ID, Attempt: 1, Out: workload.Output{Stride: out, Data: make([]byte, k*out)}}
		enc, err := c.AppendResult(nil, &res)
		if err != nil {
			return nil, err
		}
		diff := len(enc) - size
		if diff == 0 {
			break
		}
		out = min(maxPart, max(1, out-ceilDiv(diff, k)))
	}
	b.Params.OutBytes = out
	return b, nil
}

// ceilDiv rounds a/b away from zero, so a correction never undershoots.
func ceilDiv(a, b int) int {
	if a < 0 {
		return -ceilDiv(-a, b)
	}
	return (a + b - 1) / b
}

// MeasureWorker waits up to 30 s for the echo responder and a worker, then
// measures the floor through a link to that worker.
func MeasureWorker(ctx context.Context, nc *nats.Conn, codec proto.Codec, cfg Config) ([]Point, error) {
	const within = 30 * time.Second
	if err := WaitForEcho(ctx, nc, cfg.EchoSubject, within); err != nil {
		return nil, err
	}
	id, err := waitForWorker(ctx, nc, within)
	if err != nil {
		return nil, err
	}
	link, err := coordinator.NewLink(nc, codec, id)
	if err != nil {
		return nil, err
	}
	defer link.Close()
	var sl *coordinator.ShmLink
	if cfg.Shm != nil {
		ep := cfg.Shm.Lookup(ctx, coordinator.AddrID(id), 5*time.Second)
		if ep == nil {
			return nil, fmt.Errorf("transport: worker %s has no shared memory", id)
		}
		var ok bool
		if sl, ok = coordinator.NewShmLink(ep, codec, id); !ok {
			return nil, fmt.Errorf("transport: no free shared-memory slot at worker %s", id)
		}
		defer sl.Close()
	}
	return measure(ctx, nc, link, sl, cfg)
}

// waitForWorker returns the ID of a worker that answers discovery.
func waitForWorker(ctx context.Context, nc *nats.Conn, within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	for {
		ids, err := coordinator.Discover(ctx, nc, 250*time.Millisecond, 1)
		if len(ids) > 0 {
			return ids[0], nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%w: none answered within %s (%v)", coordinator.ErrNoWorkers, within, err)
		}
	}
}
