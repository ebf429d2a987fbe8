package workload

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Spin output depends only on the text: not on cost, not on calibration.
func TestSpinOutputOnlyFromText(t *testing.T) {
	docs := []string{"a", "b", ""}
	cheap := process(t, mustNew(t, "spin", Params{SpinCostNs: 1, OutBytes: 20}), docs)
	dear := process(t, mustNew(t, "spin", Params{SpinCostNs: 50_000, OutBytes: 20}), docs)
	if !bytes.Equal(cheap.Data, dear.Data) || cheap.Stride != 20 || len(cheap.Data) != 60 {
		t.Fatalf("outputs differ with cost or wrong shape: stride %d len %d", cheap.Stride, len(cheap.Data))
	}
	if bytes.Equal(cheap.Data[:20], cheap.Data[20:40]) {
		t.Fatal("different texts give the same bytes")
	}
	// A prefix of a longer output: OutBytes only truncates the stream.
	short := process(t, mustNew(t, "spin", Params{SpinCostNs: 1, OutBytes: 5}), docs[:1])
	if !bytes.Equal(short.Data, cheap.Data[:5]) {
		t.Fatal("OutBytes 5 is not a prefix of OutBytes 20")
	}
}

// The calibrated cost is roughly honoured. Loose bounds: this is a sanity
// check against unit mistakes (ns vs us), not a performance claim.
func TestSpinCost(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("timing check skipped in -short and -race")
	}
	if r := SpinIterationsPerUs(); r <= 0 {
		t.Fatalf("SpinIterationsPerUs = %v", r)
	}
	w := mustNew(t, "spin", Params{SpinCostNs: 1_000_000})
	docs := make([]string, 20)
	start := time.Now()
	process(t, w, docs)
	if per := time.Since(start) / 20; per < 300*time.Microsecond || per > 20*time.Millisecond {
		t.Fatalf("spin took %v per doc, want about 1ms", per)
	}
}

// TestSpinRateEnvPinsTheCalibration runs this test binary again with the
// rate pinned: the child must use it, not calibrate.
func TestSpinRateEnvPinsTheCalibration(t *testing.T) {
	if os.Getenv("FERRY_TEST_SPIN_CHILD") == "1" {
		fmt.Printf("rate=%g\n", SpinIterationsPerUs())
		return
	}
	for _, tc := range []struct {
		name, env string
		pinned    bool
	}{{"pinned", "123.5", true}, {"garbage calibrates", "fast", false}, {"negative calibrates", "-1", false}} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run", "^TestSpinRateEnvPinsTheCalibration$")
			cmd.Env = append(os.Environ(), "FERRY_TEST_SPIN_CHILD=1", SpinRateEnv+"="+tc.env)
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Contains(string(out), "rate=123.5\n")
			if got != tc.pinned || !strings.Contains(string(out), "rate=") {
				t.Errorf("%s=%s: child printed %q, pinned = %v, want %v", SpinRateEnv, tc.env, out, got, tc.pinned)
			}
		})
	}
}
