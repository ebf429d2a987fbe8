package faulttest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/internal/poll"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/sink"
	"github.com/ferrylab/ferry/workload"
	"github.com/nats-io/nats.go/micro"
	"golang.org/x/sys/unix"
)

// procStatus reads one "Key: N kB" field of /proc/<pid>/status, in bytes.
func procStatus(t testing.TB, pid int, key string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatalf("worker %d: %v (did it die?)", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return 0
}

// TestHostileBatchesUnderMemoryCap: small batches that ask a worker for
// gigabytes (100,000 documents of 1 MiB output each, 4096-wide embeddings
// of 100,000 documents) and a new infer model seed per batch, sent to a
// real `ferry worker` process whose address space is capped at 768 MiB
// over what it has at start (RLIMIT_AS, set with prlimit). The worker
// refuses the oversized results with 413 before computing, keeps at most
// cache_bytes of models, survives, and still answers a good batch; its
// peak RSS stays bounded. A coordinator job whose batches are too large
// for their results is split until they fit, with serial's results.
func TestHostileBatchesUnderMemoryCap(t *testing.T) {
	b := natstest.NewBroker(t, broker.Options{})
	p := pool(t, b.URL(), 1, false)
	nc := connect(t, b.URL(), "ferry-coordinator")
	var pid int
	poll.WaitFor(t, 30*time.Second, "the worker to attach", func() bool {
		pids := attachedPIDs(nc)
		if len(pids) == 1 {
			pid = pids[0]
		}
		return pid != 0
	})
	if got := p.PIDs(); len(got) != 1 || got[0] != pid {
		t.Fatalf("attached pid %d, pool %v", pid, got)
	}
	capAS := uint64(procStatus(t, pid, "VmSize")) + 768<<20
	if err := unix.Prlimit(pid, unix.RLIMIT_AS, &unix.Rlimit{Cur: capAS, Max: capAS}, nil); err != nil {
		t.Skipf("prlimit RLIMIT_AS: %v", err)
	}
	base := procStatus(t, pid, "VmHWM")

	codec, err := proto.NewCodec(proto.CodecPacked, proto.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	send := func(b *proto.Batch) (code, desc string) {
		t.Helper()
		data, err := codec.AppendBatch(nil, b)
		if err != nil {
			t.Fatal(err)
		}
		m, err := nc.Request(proto.WorkQueueSubject, data, time.Minute)
		if err != nil {
			t.Fatalf("batch %d (%s, %d docs): %v: the worker did not answer", b.ID, b.Workload, len(b.Docs), err)
		}
		return m.Header.Get(micro.ErrorCodeHeader), m.Header.Get(micro.ErrorHeader)
	}
	empty := make([]string, 100_000)
	hostile := []struct {
		name string
		b    proto.Batch
		code string
	}{
		{"noop 100k docs x 1 MiB", proto.Batch{Workload: "noop", Params: workload.Params{OutBytes: workload.MaxOutBytes}, Docs: empty}, "413"},
		{"spin 100k docs x 1 MiB", proto.Batch{Workload: "spin", Params: workload.Params{OutBytes: workload.MaxOutBytes, SpinCostNs: 1}, Docs: empty}, "413"},
		{"embed 100k docs x 4096 dims", proto.Batch{Workload: "embed", Params: workload.Params{Dim: workload.MaxDim}, Docs: empty}, "413"},
	}
	for seed := range 20 { // 20 models of 32 MiB: 640 MiB if none were evicted
		hostile = append(hostile, struct {
			name string
			b    proto.Batch
			code string
		}{fmt.Sprintf("infer seed %d", seed), proto.Batch{Workload: "infer", Params: workload.Params{Dim: workload.MaxInferDim, Seed: uint64(1000 + seed)}, Docs: []string{"one document"}}, ""})
	}
	for i, h := range hostile {
		h.b.ID, h.b.Attempt = uint64(i+1), 1
		code, desc := send(&h.b)
		if code != h.code {
			t.Errorf("%s: reply code %q (%s), want %q", h.name, code, desc, h.code)
		}
		if code == "413" && !strings.Contains(desc, "max_payload") {
			t.Errorf("%s: 413 %q does not name the limit", h.name, desc)
		}
	}
	if code, desc := send(&proto.Batch{ID: 999, Attempt: 1, Workload: "embed", Docs: []string{"still here"}}); code != "" {
		t.Fatalf("good batch after the hostile ones: %s %s", code, desc)
	}
	peak := procStatus(t, pid, "VmHWM")
	t.Logf("memory-cap: worker pid %d survived %d hostile batches under RLIMIT_AS %d MiB; VmHWM %d MiB (at start %d MiB)",
		pid, len(hostile), capAS>>20, peak>>20, base>>20)
	if grown := peak - base; grown > 256<<20 {
		t.Errorf("worker peak RSS grew %d MiB, want at most 256 MiB", grown>>20)
	}

	// A job whose batches' results are 32 MiB each (500 documents x 64 KiB)
	// is split until they fit the 8 MiB max_payload.
	d := docs(2000)
	cfg := coordinator.Config{Workload: "noop", Params: workload.Params{OutBytes: 64 << 10}, BatchSize: 500, InFlight: 1}
	var got, want []byte
	collect := func(dst *[]byte) sink.Writer {
		return sink.WriteFunc(func(_ int64, o *workload.Output, failed []bool) error {
			for i, f := range failed {
				if f {
					return errors.New("a document failed")
				}
				*dst = append(*dst, o.Data[i*o.Stride:(i+1)*o.Stride]...)
			}
			return nil
		})
	}
	st, err := run(context.Background(), t, nc, cfg, 1, corpus.Slice(d), collect(&got), nil)
	if err != nil {
		t.Fatal(err)
	}
	local, err := coordinator.NewLocal(coordinator.ModeSerial, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := coordinator.Run(context.Background(), cfg, corpus.Slice(d), local, collect(&want)); err != nil {
		t.Fatal(err)
	}
	t.Logf("memory-cap: 2000 docs x 64 KiB in batches of 500: %d splits, %d batches", st.Splits, st.Batches)
	if st.Splits == 0 || string(got) != string(want) {
		t.Errorf("splits=%d, output equal to serial: %v; want splits and serial's output", st.Splits, string(got) == string(want))
	}
	if peak := procStatus(t, pid, "VmHWM"); peak-base > 256<<20 {
		t.Errorf("worker peak RSS grew %d MiB after the split job, want at most 256 MiB", (peak-base)>>20)
	}
}
