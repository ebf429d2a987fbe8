//go:build linux

package floor_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/internal/childtest"
	"github.com/ferrylab/ferry/lab/floor"
	"github.com/ferrylab/ferry/proto"
)

// shmFleet is a local fleet of one worker with shared memory, and the echo.
func shmFleet(tb testing.TB) *fleet.Fleet {
	tb.Helper()
	bin, cleanup, err := childtest.BuildFerry()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(cleanup) // after f.Close, registered below: cleanups run last-in first-out
	f, err := fleet.Start(context.Background(), fleet.Config{Workers: 1, Echo: true, Shm: true, Exe: bin})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(f.Close)
	return f
}

// MeasureWorker with a shared-memory registry times ferry's round trip
// over shared memory too: the bench transport's shm columns.
func TestMeasureWorkerShm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ferry and starts its processes")
	}
	f := shmFleet(t)
	codec, _ := proto.NewCodec(proto.CodecPacked, proto.Limits{})
	points, err := floor.MeasureWorker(context.Background(), f.Conn(), codec, floor.Config{Sizes: []int{64, 1 << 20}, RoundTrips: 20, EchoSubject: f.Echo().Subject, Shm: f.Shm()})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range points {
		if p.Shm.N != 20 || p.Shm.P50 <= 0 || p.ShmRatio() <= 0 {
			t.Errorf("%d bytes: shm sample %+v, want 20 round trips", p.Bytes, p.Shm)
		}
	}
}

// BenchmarkRoundTripShm is BenchmarkRoundTrip with the shared-memory round
// trip to the same worker timed in turn: shm-ratio is its median over the
// raw NATS echo's (the goal at 1 MiB: at most 0.25).
//
//	go test -run '^$' -bench BenchmarkRoundTripShm -benchtime 300x ./lab/floor/
func BenchmarkRoundTripShm(b *testing.B) {
	f := shmFleet(b)
	codec, _ := proto.NewCodec(proto.CodecPacked, proto.Limits{})
	for _, size := range []int{64, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			b.SetBytes(int64(2 * size))
			points, err := floor.MeasureWorker(context.Background(), f.Conn(), codec, floor.Config{Sizes: []int{size}, RoundTrips: b.N, EchoSubject: f.Echo().Subject, Shm: f.Shm()})
			if err != nil {
				b.Fatal(err)
			}
			p := points[0]
			b.ReportMetric(float64(p.Raw.P50.Nanoseconds())/1e3, "raw-p50-us")
			b.ReportMetric(float64(p.Ferry.P50.Nanoseconds())/1e3, "ferry-p50-us")
			b.ReportMetric(float64(p.Shm.P50.Nanoseconds())/1e3, "shm-p50-us")
			b.ReportMetric(p.ShmRatio(), "shm-ratio")
		})
	}
}
