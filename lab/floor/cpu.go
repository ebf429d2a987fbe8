package floor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"
)

// CPUClock reads the CPU time used so far by the processes a measurement
// involves (the broker, the requester, the responder); ok is false where it
// cannot be read.
type CPUClock func() (d time.Duration, ok bool)

// CPUCost is what raw NATS echo round trips cost in CPU when several are in
// flight, as processes mode keeps batches in flight: the floor of CPU any
// NATS-fed worker pays per batch before it computes anything.
type CPUCost struct {
	Bytes        int           // payload, each way
	InFlight     int           // round trips in flight at once
	RoundTrips   int           // round trips timed
	PerRoundTrip time.Duration // CPU time per round trip, all processes the clock reads
}

// ErrNoCPUClock is returned by MeasureCPU when the clock cannot be read.
var ErrNoCPUClock = errors.New("transport: CPU time unreadable")

// MeasureCPU runs roundTrips raw echo round trips of size bytes each way to
// the responder on subject, inFlight at a time, and reads clock before and
// after. Sized like a run's mean batch and reply, it says how much CPU the
// broker hop alone takes per batch on this machine.
func MeasureCPU(ctx context.Context, nc *nats.Conn, subject string, size, inFlight, roundTrips int, timeout time.Duration, clock CPUClock) (CPUCost, error) {
	inFlight = max(1, min(inFlight, roundTrips))
	text, err := payload(size)
	if err != nil {
		return CPUCost{}, err
	}
	data := []byte(text)
	raws := make([]*Raw, inFlight)
	for i := range raws {
		if raws[i], err = NewRaw(nc, subject); err != nil {
			return CPUCost{}, err
		}
		defer raws[i].Close()
	}
	for _, r := range raws { // warm up: buffers grown, subjects cached
		if _, err := r.RoundTrip(ctx, data, timeout); err != nil {
			return CPUCost{}, err
		}
	}
	c0, ok0 := clock()
	g, gctx := errgroup.WithContext(ctx)
	for i, r := range raws {
		n := roundTrips / inFlight
		if i < roundTrips%inFlight {
			n++
		}
		g.Go(func() error {
			for range n {
				if _, err := r.RoundTrip(gctx, data, timeout); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return CPUCost{}, fmt.Errorf("transport: CPU of %d-byte echoes: %w", size, err)
	}
	c1, ok1 := clock()
	if !ok0 || !ok1 {
		return CPUCost{}, ErrNoCPUClock
	}
	return CPUCost{Bytes: size, InFlight: inFlight, RoundTrips: roundTrips, PerRoundTrip: (c1 - c0) / time.Duration(roundTrips)}, nil
}
