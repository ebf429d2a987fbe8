package command

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/internal/poll"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/workload"
	"github.com/nats-io/nats.go"
)

// TestResultsOverPayloadAreSplit: with a 256 KiB max payload a batch of
// 1,000 embeddings (1.5 MiB of results) cannot come back in one message;
// workers answer 413, the coordinator halves the batch until results fit,
// and the job still completes with serial's results.
func TestResultsOverPayloadAreSplit(t *testing.T) {
	out, stderr, code := ferry(t, nil, "run", "-q", "--max-payload", "262144", "--batch-size", "1000", "--doc-words", "5",
		"--docs", "3000", "--modes", "serial,processes", "--workers", "2", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	r := parseReport(t, out)
	p := r.Modes[1]
	if !r.IdenticalResults || p.Docs != 3000 || p.Failed != 0 {
		t.Errorf("identical=%v docs=%d failed=%d", r.IdenticalResults, p.Docs, p.Failed)
	}
	if p.Splits == 0 || p.Batches <= 3 {
		t.Errorf("splits=%d batches=%d: want batches split to fit the payload", p.Splits, p.Batches)
	}
}

func TestSingleResultOverPayloadNamesTheLimit(t *testing.T) {
	_, stderr, code := ferry(t, nil, "run", "-q", "--max-payload", "1024", "--batch-size", "2", "--doc-words", "5",
		"--docs", "4", "--modes", "processes", "--workers", "1")
	if code == 0 || !strings.Contains(stderr, "max_payload of 1024") {
		t.Errorf("exit %d, stderr %q; want an error naming max_payload", code, stderr)
	}
}

func TestMaxDocsBoundsInput(t *testing.T) {
	in := filepath.Join(t.TempDir(), "docs.txt")
	if err := os.WriteFile(in, []byte(strings.Repeat("one more document\n", 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := ferry(t, nil, "run", "-q", "--modes", "serial", "--input", in, "--max-docs", "5")
	if code == 0 || !strings.Contains(stderr, "max_docs 5") || !strings.Contains(stderr, "docs.txt:6") {
		t.Errorf("exit %d, stderr %q; want an error naming max_docs and the line", code, stderr)
	}
	out, stderr, code := ferry(t, nil, "run", "-q", "--modes", "serial", "--input", in, "--max-docs", "10", "--format", "json")
	if code != 0 || parseReport(t, out).Modes[0].Docs != 10 {
		t.Errorf("exit %d, stderr %q; want all 10 documents at max_docs 10", code, stderr)
	}
}

// rssPeak is a process's peak resident set (VmHWM) in bytes.
func rssPeak(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestWorkerFloodStaysBounded publishes far more slow batches at one
// worker process than it can compute. Its subscription's pending limit
// drops the excess (and the worker says so), so its memory stays bounded,
// and it still answers once the flood is over.
func TestWorkerFloodStaysBounded(t *testing.T) {
	_, url := natstest.NewServer(t)
	w := spawnFerry(t, []string{"FERRY_NATS_URL=" + url}, "worker")
	nc := natstest.Connect(t, url)
	var id string
	poll.WaitFor(t, 20*time.Second, "the worker to list its batch endpoint", func() bool {
		ids, _ := coordinator.Discover(context.Background(), nc, 200*time.Millisecond, 1)
		if len(ids) == 0 {
			return false
		}
		id = ids[0]
		return true
	})
	subject := proto.WorkSubject(id)
	base := rssPeak(t, w.cmd.Process.Pid)

	// 600 batches of 256 KiB, each 20 ms of compute: 150 MiB the worker
	// would need to hold if its subscription queued without limit.
	codec, _ := proto.NewCodec(proto.CodecPacked, proto.Limits{})
	doc := strings.Repeat("flood ", 256<<10/6)
	const n, size = 600, 256 << 10
	for i := range n {
		b := &proto.Batch{ID: uint64(i), Attempt: 1, Workload: "spin", Params: workload.Params{SpinCostNs: 20e6}, Docs: []string{doc}}
		data, err := codec.AppendBatch(nil, b)
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish(subject, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	limit := base + 96<<20
	dropped := func() bool {
		return strings.Contains(w.out.String(), "slow consumer") && strings.Contains(w.out.String(), "pending_limit_msgs=64")
	}
	poll.WaitFor(t, 30*time.Second, "the worker to drop messages or grow", func() bool {
		return dropped() || rssPeak(t, w.cmd.Process.Pid) > limit
	})
	peak := rssPeak(t, w.cmd.Process.Pid)
	t.Logf("worker peak RSS %d MiB before the flood, %d MiB after %d MiB sent", base>>20, peak>>20, n*size>>20)
	if peak > limit {
		t.Errorf("worker peak RSS %d MiB, over %d MiB: the flood was queued, not dropped", peak>>20, limit>>20)
	}
	if !dropped() {
		t.Errorf("worker log does not name the pending limit:\n%s", w.out.String())
	}

	// A request sent while the queue is still full is dropped too; like
	// the coordinator, re-send until the worker has room.
	b := &proto.Batch{ID: 1 << 40, Attempt: 1, Workload: "embed", Docs: []string{"after the flood"}}
	data, _ := codec.AppendBatch(nil, b)
	var reply *nats.Msg
	poll.WaitFor(t, 60*time.Second, "a reply after the flood", func() bool {
		var err error
		reply, err = nc.RequestMsg(&nats.Msg{Subject: subject, Data: data}, 2*time.Second)
		return err == nil
	})
	var r proto.Result
	if err := codec.DecodeResult(reply.Data, &r); err != nil || r.BatchID != 1<<40 {
		t.Errorf("reply after the flood: batch %d, err %v", r.BatchID, err)
	}
	if !alive(w.cmd.Process.Pid) {
		t.Error("worker exited")
	}
}
