package faulttest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/internal/poll"
	"github.com/ferrylab/ferry/proto"
	"github.com/nats-io/nats.go"
)

// TestPausedWorkerLateResult: a worker is SIGSTOPped while it holds
// batches, stays stopped well past the batch deadline, and is SIGCONTed once
// the rest of the fleet has recomputed its batches. It then answers them
// late; the coordinator has given up on those requests, so the late results
// never reach the output: still exactly once.
func TestPausedWorkerLateResult(t *testing.T) {
	r := rng(t)
	n, workers := 6_000, 3
	d := docs(n)
	cfg := job(10, 20*time.Microsecond)
	cfg.BatchTimeout = 300 * time.Millisecond

	b := natstest.NewBroker(t, broker.Options{})
	p := pool(t, b.URL(), workers, false)
	nc := connect(t, b.URL(), "ferry-coordinator")
	probe := connect(t, b.URL(), "probe")

	// Replies travel to the coordinator's _INBOX; the probe sees them too
	// and counts those from the paused worker after it is resumed. The
	// answer to the coordinator's own probe of the worker (an empty batch,
	// sent when it missed its deadline) is no late reply.
	var pausedPID atomic.Int64
	var counting atomic.Bool // between SIGCONT and new work being sent
	var late atomic.Int64
	codec, _ := proto.NewCodec(proto.CodecPacked, proto.Limits{})
	sub, err := probe.Subscribe("_INBOX.>", func(m *nats.Msg) {
		var r proto.Result
		if counting.Load() && m.Header.Get(proto.HeaderStagesNs) != "" &&
			// The default worker name ends in its pid (ferry-worker-[host-]pid).
			strings.HasSuffix(m.Header.Get(proto.HeaderWorker), "-"+strconv.FormatInt(pausedPID.Load(), 10)) &&
			codec.DecodeResult(m.Data, &r) == nil && len(r.Out.Data) > 0 {
			late.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := probe.Flush(); err != nil {
		t.Fatal(err)
	}

	l := newLedger(t, d, cfg.Params)
	stopAt := n/4 + r.IntN(n/4)
	// The input waits at holdAt (a batch boundary, so every document read is
	// in a sent batch) until the pause is over: then nothing is outstanding
	// and any reply from the resumed worker is a late one.
	holdAt := (stopAt + n/4) / cfg.BatchSize * cfg.BatchSize
	var stoppedAt time.Time
	var pausedFor time.Duration
	src := &source{docs: d, at: func(i int) {
		switch i {
		case stopAt:
			pid := victim(r, attachedPIDs(probe), p.PIDs())
			if pid == 0 || syscall.Kill(pid, syscall.SIGSTOP) != nil {
				t.Errorf("no worker to pause")
				return
			}
			pausedPID.Store(int64(pid))
			stoppedAt = time.Now()
		case holdAt:
			// Everything read so far, including the paused worker's batches,
			// must be written by the others before it resumes.
			if !poll.Until(time.Minute, func() bool { return l.prefix() >= int64(holdAt) }) {
				t.Errorf("the fleet did not recompute the paused worker's batches")
			}
			pausedFor = time.Since(stoppedAt)
			counting.Store(true)
			if err := syscall.Kill(int(pausedPID.Load()), syscall.SIGCONT); err != nil {
				t.Errorf("SIGCONT: %v", err)
			}
			if !poll.Until(30*time.Second, func() bool { return late.Load() > 0 }) {
				t.Errorf("the paused worker never replied after SIGCONT")
			}
			// Let the other late replies (one per lane at most) arrive too.
			poll.Until(2*time.Second, func() bool { return late.Load() >= int64(cfg.InFlight) })
			counting.Store(false)
		}
	}}
	st, err := run(context.Background(), t, nc, cfg, workers, src, l, nil)
	if err != nil {
		t.Fatalf("job: %v", err)
	}
	v := l.verdict()
	summary(t, "sigstop", v, st, fmt.Sprintf("batch_timeout=%s late_replies_discarded=%d paused_for=%s",
		cfg.BatchTimeout, late.Load(), pausedFor.Round(time.Millisecond)))
	v.check(t)
	if st.Retries == 0 {
		t.Errorf("retries = 0: the paused worker's batches were never re-sent")
	}
	if pausedFor < cfg.BatchTimeout {
		t.Errorf("paused for %s, less than the %s deadline", pausedFor, cfg.BatchTimeout)
	}
	if got := late.Load(); got < 1 || got > int64(cfg.InFlight) {
		t.Errorf("late replies = %d, want 1..%d (one per lane that timed out)", got, cfg.InFlight)
	}
	if st.Dupes != 0 {
		t.Errorf("dupes = %d: a late result reached the collector", st.Dupes)
	}
}
