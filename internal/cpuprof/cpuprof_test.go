package cpuprof

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

func TestIsOwn(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stack []string
		want  bool
	}{
		{"the link's allocation", []string{"runtime.memclrNoHeapPointers", "runtime.mallocgc", "runtime.makeslice", "github.com/ferrylab/ferry/coordinator.(*Link).RoundTrip"}, true},
		{"the client's copy", []string{"runtime.memmove", "github.com/nats-io/nats.go.(*Conn).processMsg"}, false},
		{"the client's allocation", []string{"runtime.mallocgc", "runtime.makeslice", "github.com/nats-io/nats.go.(*Conn).processMsg", "github.com/ferrylab/ferry/worker.(*Worker).handle"}, false},
		{"the background GC", []string{"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker"}, false},
		{"encode", []string{"github.com/ferrylab/ferry/proto.packed.AppendResult"}, true},
		{"the digest", []string{"github.com/cespare/xxhash/v2.writeBlocks", "github.com/ferrylab/ferry/coordinator.(*Digest).Add"}, true},
		{"the client", []string{"github.com/nats-io/nats.go.(*Conn).readLoop"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsOwn(Classify(tc.stack), tc.stack); got != tc.want {
				t.Errorf("IsOwn(%s, %q) = %v, want %v", Classify(tc.stack), tc.stack, got, tc.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stack []string // leaf first
		want  Part
	}{
		{"broker's write", []string{"syscall.Syscall", "github.com/nats-io/nats-server/v2/server.(*client).flushOutbound"}, Broker},
		{"broker's copy", []string{"runtime.memmove", "github.com/nats-io/nats-server/v2/server.(*client).queueOutbound"}, Broker},
		{"workload", []string{"math.Sqrt", "github.com/ferrylab/ferry/workload.(*embed).Compute", "github.com/ferrylab/ferry/workload.ComputeBatch"}, Compute},
		{"workload's allocation", []string{"runtime.mallocgc", "github.com/ferrylab/ferry/workload.ComputeBatch"}, Compute},
		{"allocation in the link", []string{"runtime.memclrNoHeapPointers", "runtime.mallocgc", "runtime.makeslice", "github.com/ferrylab/ferry/coordinator.(*Link).RoundTrip"}, Alloc},
		{"gc worker", []string{"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker"}, Alloc},
		{"encode's copy", []string{"runtime.memmove", "github.com/ferrylab/ferry/proto.appendFloats", "github.com/ferrylab/ferry/proto.packed.AppendResult"}, Encode},
		{"decode", []string{"github.com/ferrylab/ferry/proto.(*reader).strBytes", "github.com/ferrylab/ferry/proto.packed.decodeResult"}, Decode},
		{"copy in the client", []string{"runtime.memmove", "github.com/nats-io/nats.go.(*Conn).processMsg"}, Copies},
		{"client's write", []string{"internal/runtime/syscall.Syscall6", "syscall.write", "github.com/nats-io/nats.go.(*Conn).flusher"}, Syscalls},
		{"futex", []string{"runtime.futex", "runtime.notewakeup", "runtime.startm", "runtime.wakep"}, Syscalls},
		{"scheduler", []string{"runtime.runqgrab", "runtime.stealWork", "runtime.findRunnable", "runtime.schedule"}, Scheduler},
		{"client", []string{"github.com/nats-io/nats.go.(*Conn).parse", "github.com/nats-io/nats.go.(*Conn).readLoop"}, NATS},
		{"collector", []string{"github.com/ferrylab/ferry/coordinator.(*collector).complete"}, Ferry},
		{"hash", []string{"github.com/cespare/xxhash/v2.(*Digest).Write", "github.com/ferrylab/ferry/coordinator.(*Digest).Add"}, Ferry},
		{"unknown", []string{"runtime.nanotime1", "runtime.nanotime"}, Other},
		{"empty", nil, Other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.stack); got != tc.want {
				t.Errorf("Classify(%q) = %s, want %s", tc.stack, got, tc.want)
			}
		})
	}
}

// synthetic builds a gzipped CPU profile with one sample per stack, each
// of the given CPU.
func synthetic(t testing.TB, cpu time.Duration, stacks ...[]string) []byte {
	t.Helper()
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     int64(cpu),
	}
	funcs := map[string]*profile.Function{}
	for _, st := range stacks {
		s := &profile.Sample{Value: []int64{1, int64(cpu)}}
		for _, name := range st {
			f := funcs[name]
			if f == nil {
				f = &profile.Function{ID: uint64(len(funcs) + 1), Name: name}
				funcs[name] = f
				p.Function = append(p.Function, f)
			}
			loc := &profile.Location{ID: uint64(len(p.Location) + 1), Line: []profile.Line{{Function: f}}}
			p.Location = append(p.Location, loc)
			s.Location = append(s.Location, loc)
		}
		p.Sample = append(p.Sample, s)
	}
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParseSyntheticProfile(t *testing.T) {
	const ms = time.Millisecond
	data := synthetic(t, 10*ms,
		[]string{"github.com/ferrylab/ferry/workload.ComputeBatch"},
		[]string{"github.com/ferrylab/ferry/workload.ComputeBatch"},
		[]string{"github.com/ferrylab/ferry/proto.packed.AppendResult"},
		[]string{"runtime.memmove", "github.com/ferrylab/ferry/coordinator.(*collector).flush"},
		[]string{"runtime.gcBgMarkWorker"},
		[]string{"github.com/ferrylab/ferry/workload.ComputeBatch", "github.com/ferrylab/ferry/worker.(*Worker).handle"},
	)
	p, err := Parse("worker", 55*ms, data)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Own, 20*ms; got != want { // encode, and the collector's copy
		t.Errorf("own = %v, want %v", got, want)
	}
	if got, want := p.HandlerSampled, 10*ms; got != want {
		t.Errorf("handler sampled = %v, want the one sample under the handler, %v", got, want)
	}
	if got, want := p.Samples, 6; got != want {
		t.Errorf("samples = %d, want %d", got, want)
	}
	if got, want := p.Sampled, 60*ms; got != want {
		t.Errorf("sampled = %v, want %v", got, want)
	}
	if got, want := p.Parts.Sum(), p.Sampled; got != want {
		t.Errorf("parts sum to %v, want the sampled %v", got, want)
	}
	for part, want := range map[Part]time.Duration{Compute: 30 * ms, Encode: 10 * ms, Copies: 10 * ms, Alloc: 10 * ms, NATS: 0} {
		if got := p.Parts[part]; got != want {
			t.Errorf("%s = %v, want %v", part, got, want)
		}
	}
	if p.Clock != 55*ms {
		t.Errorf("clock = %v, want the one given", p.Clock)
	}
}

func TestParseRejectsGarbage(t *testing.T) {
	if _, err := Parse("x", 0, []byte("not a profile")); err == nil {
		t.Error("Parse of garbage: no error")
	}
	if _, err := parseFile("x", []byte("ferry-cpuprof v1 -5\n")); err == nil {
		t.Error("parseFile with a negative clock: no error")
	}
	if _, err := parseFile("x", []byte("something else\n")); err == nil {
		t.Error("parseFile without the header: no error")
	}
	p, err := parseFile("x", []byte("ferry-cpuprof v1 1000 400 7\n"))
	if err != nil || p.Clock != time.Microsecond || p.Handler != 400 || p.Faults != 7 || p.Samples != 0 {
		t.Errorf("parseFile of an empty recording = %+v, %v; want the clocks and no samples", p, err)
	}
	if _, err := parseFile("x", []byte("ferry-cpuprof v1 1000 1 2 3\n")); err == nil {
		t.Error("parseFile with four fields: no error")
	}
	if _, err := parseFile("x", []byte("ferry-cpuprof v1 1000 -1\n")); err == nil {
		t.Error("parseFile with a negative handler clock: no error")
	}
}

// TestServeRecordsOnSignals asks this very process, as a parent asks a
// worker, to record while it hashes, and reads back what it wrote.
func TestServeRecordsOnSignals(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var sw Stopwatch
	Serve(ctx, dir, &sw)
	if started, err := StartChildren(dir, []int{os.Getpid() + 1<<20}); err != nil || len(started) != 0 {
		t.Fatalf("StartChildren of a process not serving = %v, %v; want none asked", started, err)
	}
	pids, err := StartChildren(dir, []int{os.Getpid()})
	if err != nil || len(pids) != 1 {
		t.Fatalf("StartChildren = %v, %v; want this process asked", pids, err)
	}
	// The recording starts on the signal's delivery: hash until the
	// process has spent 300 ms of CPU, enough for samples at 100 Hz.
	cpu0 := selfCPU()
	sum := sha256.Sum256(nil)
	for selfCPU()-cpu0 < 300*time.Millisecond {
		t0 := sw.Begin() // half the hashing is "the handler"
		for range 1000 {
			sum = sha256.Sum256(sum[:])
		}
		sw.End(t0)
		for range 1000 {
			sum = sha256.Sum256(sum[:])
		}
	}
	stop, cancelStop := context.WithTimeout(ctx, 10*time.Second)
	defer cancelStop()
	got, err := StopChildren(stop, dir, pids, func(pid int) string { return "worker " + strconv.Itoa(pid) })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("%d profiles, want 1", len(got))
	}
	p := got[0]
	if p.Clock < 200*time.Millisecond {
		t.Errorf("clock = %v, want most of the 300 ms spent hashing", p.Clock)
	}
	if p.Handler < p.Clock/4 || p.Handler > p.Clock*3/4 {
		t.Errorf("handler %v of %v: want about half", p.Handler, p.Clock)
	}
	if p.Samples == 0 || p.Sampled == 0 {
		t.Errorf("no samples in %+v", p)
	}
	// Hashing under this test is a ferry frame; with -race, much of it is
	// in the race runtime's C code, which has no Go stack (other).
	if p.Parts[Ferry] == 0 || p.Parts[Ferry]+p.Parts[Other] < p.Sampled/2 {
		t.Errorf("hashing under this test is %v ferry and %v other of %v sampled, want most: %+v", p.Parts[Ferry], p.Parts[Other], p.Sampled, p.Parts)
	}
	for _, part := range []Part{Compute, Broker, NATS} {
		if p.Parts[part] != 0 {
			t.Errorf("%s = %v, want none in a process without it", part, p.Parts[part])
		}
	}
}
