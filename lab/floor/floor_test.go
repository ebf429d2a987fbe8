package floor_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/childtest"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/lab/floor"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/worker"
	"github.com/nats-io/nats.go"
)

const roleEcho = "echo"

func TestMain(m *testing.M) {
	childtest.Main(m, map[string]childtest.Role{roleEcho: serveEcho})
}

func serveEcho(ctx context.Context, url string) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	return floor.Echo(ctx, nc, proto.EchoSubject)
}

// inProcess starts a broker, an echo responder and a worker in this process
// and returns a connection and a link to the worker.
func inProcess(t *testing.T, codec string) (*nats.Conn, *coordinator.Link) {
	t.Helper()
	_, url := natstest.NewServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	w, err := worker.New(worker.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(2)
	go func() { defer wg.Done(); _ = w.Run(ctx) }()
	go func() { defer wg.Done(); _ = serveEcho(ctx, url) }()
	nc := natstest.Connect(t, url)
	return nc, link(t, nc, codec)
}

func link(tb testing.TB, nc *nats.Conn, codecName string) *coordinator.Link {
	tb.Helper()
	ctx := context.Background()
	if err := floor.WaitForEcho(ctx, nc, proto.EchoSubject, 30*time.Second); err != nil {
		tb.Fatal(err)
	}
	var ids []string
	for deadline := time.Now().Add(30 * time.Second); len(ids) == 0; {
		if time.Now().After(deadline) {
			tb.Fatal("no worker answered discovery within 30s")
		}
		ids, _ = coordinator.Discover(ctx, nc, 250*time.Millisecond, 1)
	}
	codec, err := proto.NewCodec(codecName, proto.Limits{})
	if err != nil {
		tb.Fatal(err)
	}
	l, err := coordinator.NewLink(nc, codec, ids[0])
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

func TestMeasureShapesBothSides(t *testing.T) {
	for _, codec := range proto.CodecNames() {
		t.Run("codec="+codec, func(t *testing.T) {
			nc, l := inProcess(t, codec)
			sizes := []int{256, 5000, 1<<20 + 4096} // over 1 MiB: split over two documents
			points, err := floor.Measure(context.Background(), nc, l, floor.Config{Sizes: sizes, RoundTrips: 3, Warmup: 1})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(points), len(sizes); got != want {
				t.Fatalf("points = %d, want %d", got, want)
			}
			for i, p := range points {
				if p.Bytes != sizes[i] || p.Raw.N != 3 || p.Ferry.N != 3 || p.Raw.P50 <= 0 || p.Ferry.P50 <= 0 || p.Ratio() <= 0 {
					t.Errorf("point %d = %+v", i, p)
				}
				// Framing may keep ferry a few dozen bytes off the target, never more.
				for _, got := range []int{p.BatchBytes, p.ResultBytes} {
					if d := got - p.Bytes; d < -8 || d > 96 {
						t.Errorf("%d bytes: ferry message of %d bytes, want within framing of the target", p.Bytes, got)
					}
				}
				if p.Stages[coordinator.StageTransport] <= 0 {
					t.Errorf("%d bytes: no transport stage: %v", p.Bytes, p.Stages)
				}
			}
		})
	}
}

func TestWaitForEchoGivesUp(t *testing.T) {
	_, url := natstest.NewServer(t)
	nc := natstest.Connect(t, url)
	err := floor.WaitForEcho(context.Background(), nc, "nobody.here", 100*time.Millisecond)
	if err == nil {
		t.Fatal("WaitForEcho with no responder returned nil")
	}
}

// BenchmarkRoundTrip times, per payload size, a raw NATS echo and ferry's
// batch round trip (noop workload, same request and reply sizes) in turn,
// with the echo responder and the worker in child processes, and reports
// both medians and ferry's over raw ("ratio"). ns/op covers one of each.
//
//	go test -run '^$' -bench BenchmarkRoundTrip -benchtime 500x ./transport/
func BenchmarkRoundTrip(b *testing.B) {
	srv := natstest.NewBroker(b, broker.Options{})
	childtest.Start(b, childtest.RoleWorker, srv.URL(), 1)
	childtest.Start(b, roleEcho, srv.URL(), 1)
	nc := natstest.Connect(b, srv.URL())
	l := link(b, nc, proto.CodecPacked)
	for _, size := range []int{64, 4 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			b.SetBytes(int64(2 * size))
			points, err := floor.Measure(context.Background(), nc, l, floor.Config{Sizes: []int{size}, RoundTrips: b.N})
			if err != nil {
				b.Fatal(err)
			}
			p := points[0]
			b.ReportMetric(float64(p.Raw.P50.Nanoseconds())/1e3, "raw-p50-us")
			b.ReportMetric(float64(p.Ferry.P50.Nanoseconds())/1e3, "ferry-p50-us")
			b.ReportMetric(p.Ratio(), "ratio")
		})
	}
}

func TestMeasurePython(t *testing.T) {
	python, err := floor.FindPython("auto")
	if err != nil {
		t.Skip("no python3 on PATH:", err)
	}
	version, samples, err := floor.MeasurePython(context.Background(), python, []int{64, 64 << 10}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if version == "" || len(samples) != 2 {
		t.Fatalf("version %q, %d samples; want a version and one sample per size", version, len(samples))
	}
	for i, s := range samples {
		if s.N != 5 || s.P50 <= 0 || s.P99 < s.P50 {
			t.Errorf("size %d: sample %+v, want 5 round trips with p50 > 0 and p99 >= p50", i, s)
		}
	}
	if p, err := floor.FindPython("off"); p != "" || err != nil {
		t.Errorf(`FindPython("off") = %q, %v; want "", nil`, p, err)
	}
	if _, _, err := floor.MeasurePython(context.Background(), "false", []int{64}, 1); err == nil {
		t.Error("an interpreter that fails gave no error")
	}
}
