package proto

import (
	"errors"
	"strings"
	"testing"

	"github.com/ferrylab/ferry/workload"
)

// A batch whose result could not be held or sent is refused before it is
// computed, whatever its size: nothing of the result is allocated.
func TestLimitsWorkloadChecksResultBeforeCompute(t *testing.T) {
	huge := make([]string, 100_000)
	tests := []struct {
		name    string
		lim     Limits
		b       Batch
		payload int64
		want    string // "" = accepted
	}{
		{name: "noop 100k docs x 1 MiB", b: Batch{Workload: "noop", Params: workload.Params{OutBytes: workload.MaxOutBytes}, Docs: huge},
			payload: 8 << 20, want: "over the broker's max_payload of 8388608"},
		{name: "spin 100k docs x 1 MiB", b: Batch{Workload: "spin", Params: workload.Params{OutBytes: workload.MaxOutBytes, SpinCostNs: 1}, Docs: huge},
			payload: 64 << 20, want: "would be 104857600000 bytes"},
		{name: "embed over the worker's own limit", lim: Limits{MaxResultBytes: 1 << 20}, b: Batch{Workload: "embed", Params: workload.Params{Dim: 4096}, Docs: huge[:100]},
			payload: 8 << 20, want: "over the worker's max_result_bytes of 1048576"},
		{name: "fits", b: Batch{Workload: "noop", Docs: huge}, payload: 8 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c workload.Cache
			var err error
			alloc := measureAlloc(func() { _, err = tc.lim.Workload(&c, &tc.b, tc.payload) })
			if tc.want == "" {
				if err != nil {
					t.Fatalf("err = %v, want the workload", err)
				}
				return
			}
			if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrLimit containing %q", err, tc.want)
			}
			if alloc > 1<<20 {
				t.Errorf("allocated %d bytes refusing the batch", alloc)
			}
		})
	}
}
