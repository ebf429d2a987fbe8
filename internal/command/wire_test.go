package command

import (
	"encoding/json"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/report"
)

func TestBenchTransport(t *testing.T) {
	out, stderr, code := ferry(t, nil, "bench", "transport", "--sizes", "64,16KiB", "--roundtrips", "20", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r report.Transport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if r.Schema != report.TransportSchema || len(r.Points) != 2 {
		t.Fatalf("schema %q, %d points; want %q and 2", r.Schema, len(r.Points), report.TransportSchema)
	}
	for i, want := range []int{64, 16 << 10} {
		p := r.Points[i]
		if p.Bytes != want || p.Roundtrip != 20 || p.RawP50us <= 0 || p.RawP99us < p.RawP50us ||
			p.FerryP50 <= 0 || p.FerryP99 < p.FerryP50 || p.Ratio <= 0 {
			t.Errorf("point %d = %+v", i, p)
		}
		if p.Stages["transport"] <= 0 {
			t.Errorf("point %d has no transport stage: %v", i, p.Stages)
		}
	}
	text, stderr, code := ferry(t, nil, "bench", "transport", "--sizes", "1KiB", "--roundtrips", "5")
	if code != 0 || !strings.Contains(text, "raw_p50_us") || !strings.Contains(text, "1 KiB") {
		t.Errorf("text report, exit %d: %s%s", code, text, stderr)
	}
}

func TestBenchTransportBadSizes(t *testing.T) {
	for _, sizes := range []string{"64,abc", "0", "9MiB"} {
		_, stderr, code := ferry(t, nil, "bench", "transport", "--sizes", sizes)
		if code != 2 || !strings.Contains(stderr, "sizes=") {
			t.Errorf("--sizes %s: exit %d, stderr %q; want 2 naming the key", sizes, code, stderr)
		}
	}
}

// Compression changes the bytes on the wire, never the results; a
// processes report carries the transport floor.
func TestRunCompressed(t *testing.T) {
	args := []string{"run", "-q", "--docs", "300", "--batch-size", "50", "--workers", "2", "--modes", "serial,codec,processes", "--format", "json"}
	var bytesOut [2]int64
	for i, extra := range [][]string{nil, {"--compress", "s2"}} {
		out, stderr, code := ferry(t, nil, append(args, extra...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", extra, code, stderr)
		}
		var r report.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("not JSON: %v", err)
		}
		if !r.IdenticalResults {
			t.Errorf("%v: results differ across modes", extra)
		}
		p := r.Modes[2]
		bytesOut[i] = p.BytesOut
		for _, m := range r.Modes {
			if m.CPUus <= 0 {
				t.Errorf("%v: %s: cpu_us_per_doc = %v, want the measured CPU time", extra, m.Mode, m.CPUus)
			}
		}
		if len(r.Floor) != 2 || r.Floor[0].Bytes != 64 || r.Floor[1].Bytes <= 64 || r.Floor[1].RawP50us <= 0 || r.Floor[1].FerryP50 <= 0 {
			t.Errorf("%v: transport floor = %+v, want 64 B and the mean message size", extra, r.Floor)
		}
		if r.Floor[len(r.Floor)-1].RawCPUus <= 0 || r.Floor[len(r.Floor)-1].RawCPUInFlight != 2 {
			t.Errorf("%v: transport floor = %+v, want the raw echo's CPU cost at the mean size, 2 in flight", extra, r.Floor)
		}
	}
	if bytesOut[1] >= bytesOut[0] {
		t.Errorf("processes sent %d bytes compressed, %d plain", bytesOut[1], bytesOut[0])
	}
	_, stderr, code := ferry(t, nil, "run", "--compress", "zstd")
	if code != 2 || !strings.Contains(stderr, "compress=zstd") {
		t.Errorf("--compress zstd: exit %d, stderr %q", code, stderr)
	}
}

// ferry coordinator against an external broker carries the floor too, from
// an echo of its own (two coordinators on one broker must not share one).
func TestCoordinatorReportsFloor(t *testing.T) {
	_, url := natstest.NewServer(t)
	w := exec.Command(ferryBin, "worker", "--nats-url", url, "--procs", "2", "--log-level", "warn")
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Process.Signal(syscall.SIGTERM); w.Wait() })
	// A stray echo on the default subject would answer a shared subject.
	stray := exec.Command(ferryBin, "echo", "--nats-url", url)
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stray.Process.Signal(syscall.SIGTERM); stray.Wait() })
	out, stderr, code := ferry(t, nil, "coordinator", "-q", "--nats-url", url, "--expect-workers", "2", "--docs", "200",
		"--batch-size", "20", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r report.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if len(r.Modes) != 1 || r.Modes[0].Docs != 200 || r.Modes[0].Workers != 2 {
		t.Fatalf("modes = %+v", r.Modes)
	}
	if r.Modes[0].CPUus != 0 {
		t.Errorf("cpu_us_per_doc = %v with workers this process cannot see, want 0 (not measured)", r.Modes[0].CPUus)
	}
	if len(r.Floor) == 0 || r.Floor[0].RawP50us <= 0 || r.Floor[0].FerryP50 <= 0 {
		t.Errorf("transport floor = %+v", r.Floor)
	}
	for _, p := range r.Floor {
		if p.RawCPUus != 0 {
			t.Errorf("floor point %+v claims the CPU of a broker in another process", p)
		}
	}
}
