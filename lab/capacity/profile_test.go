package capacity

import (
	"bytes"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

//go:noinline
func burnForProfile(d time.Duration) uint64 {
	x := uint64(1)
	for start := time.Now(); time.Since(start) < d; {
		for range 1000 {
			x ^= x >> 31
			x *= 0x9e3779b97f4a7c15
		}
	}
	return x
}

var burnSink uint64

// profileCPU finds the CPU spent under a named function in a real profile
// of this process (nearly all of it: the profile samples at 100 Hz).
func TestProfileCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("burns 300 ms of CPU")
	}
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		t.Skip("a profile is already running:", err)
	}
	start := time.Now()
	burnSink = burnForProfile(300 * time.Millisecond)
	wall := time.Since(start)
	pprof.StopCPUProfile()
	got, err := profileCPU(bytes.NewReader(buf.Bytes()), func(fn string) bool { return strings.HasSuffix(fn, ".burnForProfile") })
	if err != nil {
		t.Fatal(err)
	}
	// At most the wall time; at least a few samples (a loaded machine may
	// give the loop a small share of a core).
	if got <= 0 || got > wall+20*time.Millisecond {
		t.Errorf("CPU under burnForProfile = %v over %v of wall time", got, wall)
	}
	none, err := profileCPU(bytes.NewReader(buf.Bytes()), func(string) bool { return false })
	if err != nil || none != 0 {
		t.Errorf("no frame matched, got %v, %v", none, err)
	}
}

func TestIsSerial(t *testing.T) {
	for fn, want := range map[string]bool{
		"github.com/nats-io/nats%2ego.(*Conn).readLoop":               true,
		"github.com/ferrylab/ferry/coordinator.(*collector).complete": true,
		"github.com/ferrylab/ferry/coordinator.(*Processes).lane":     false,
		"github.com/nats-io/nats%2ego.(*Conn).flusher":                false,
	} {
		if got := isSerial(fn); got != want {
			t.Errorf("isSerial(%s) = %v, want %v", fn, got, want)
		}
	}
}
