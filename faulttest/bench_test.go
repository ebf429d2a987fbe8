package faulttest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/sink"
	"github.com/ferrylab/ferry/workload"
)

// BenchmarkDispatch measures what durability costs per batch: the same job
// (spin at 1 ns a document, so almost all the time is dispatch) on the same
// two worker processes, by request/reply and through JetStream streams.
// One op is one batch; compare ns/op between the two sub-benchmarks of one
// run (go test -bench Dispatch -benchtime 2000x ./faulttest).
func BenchmarkDispatch(b *testing.B) {
	for _, batch := range []int{10, 100} {
		for _, dispatch := range []string{coordinator.DispatchRequest, coordinator.DispatchJetStream} {
			b.Run(fmt.Sprintf("dispatch=%s/batch=%d", dispatch, batch), func(b *testing.B) {
				br := jsBroker(b)
				poolWith(b, br.URL(), 2, false, []string{"--dispatch", "jetstream"})
				nc := connect(b, br.URL(), "ferry-coordinator")
				cfg := coordinator.Config{Workload: "spin", Params: workload.Params{SpinCostNs: 1}, BatchSize: batch, Workers: 2}
				newBackend := func() coordinator.Backend {
					be, err := coordinator.NewBackend(coordinator.BackendConfig{
						Mode: coordinator.ModeProcesses, Dispatch: dispatch, Job: cfg, Conn: nc, Expect: 2,
					})
					if err != nil {
						b.Fatal(err)
					}
					return be
				}
				// Warm up: workers attached, streams created, spin calibrated.
				if _, err := coordinator.Run(context.Background(), cfg, &source{docs: docs(20 * batch)}, newBackend(), sink.Discard{}); err != nil {
					b.Fatal(err)
				}
				d := docs(b.N * batch)
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				st, err := coordinator.Run(context.Background(), cfg, &source{docs: d}, newBackend(), sink.Discard{})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(st.Docs)/time.Since(start).Seconds(), "docs/s")
			})
		}
	}
}
