package llm

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"testing"
	"time"
)

func prompts(n int) []string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = fmt.Sprintf("document %d says %s", i, strings.Repeat("words ", i%7))
	}
	return ps
}

func TestRun(t *testing.T) {
	m, url := newMockServer(t, MockConfig{LatencyP50: 5 * time.Millisecond, LatencyP99: 20 * time.Millisecond, ErrorRate: 0.3, Seed: 7})
	cfg := fastRetry(url)
	cfg.MaxAttempts = 2
	c := newClient(t, cfg)
	ps := prompts(300)
	const conc = 20

	var gotErrors int64
	seen := make([]bool, len(ps))
	s, err := Run(t.Context(), c, slices.All(ps), conc, func(i int, comp Completion, err error) {
		seen[i] = true // no lock: onResult calls are serialized (-race checks it)
		if err != nil {
			gotErrors++
			return
		}
		if want := m.Reply(ps[i]); comp.Text != want {
			t.Errorf("prompt %d: Text = %q, want %q", i, comp.Text, want)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Calls, int64(len(ps)); got != want {
		t.Errorf("Calls = %d, want %d", got, want)
	}
	if !slices.Equal(seen, slices.Repeat([]bool{true}, len(ps))) {
		t.Error("onResult missed some indices")
	}
	if got, want := s.Errors, gotErrors; got != want {
		t.Errorf("Errors = %d, onResult saw %d", got, want)
	}
	// With a 30% failure rate and 2 attempts, ~9% of calls fail and ~30% retry.
	if s.Errors == 0 || s.Retries == 0 || s.Errors >= s.Calls {
		t.Errorf("Errors = %d, Retries = %d of %d calls: want some of each", s.Errors, s.Retries, s.Calls)
	}
	if got, want := m.Stats().Requests, s.Calls+s.Retries; got != want {
		t.Errorf("mock saw %d requests, want Calls+Retries = %d", got, want)
	}
	if s.InFlightPeak < 2 || s.InFlightPeak > conc {
		t.Errorf("InFlightPeak = %d, want in [2, %d]", s.InFlightPeak, conc)
	}
	if !(s.LatencyP50 > 0 && s.LatencyP50 <= s.LatencyP99 && s.LatencyP99 <= s.SerialEstimate) {
		t.Errorf("want 0 < p50 <= p99 <= serial, got %v, %v, %v", s.LatencyP50, s.LatencyP99, s.SerialEstimate)
	}
	if s.Wall <= 0 || s.CallsPerSec <= 0 || s.Speedup() <= 1 {
		t.Errorf("Wall = %v, CallsPerSec = %v, Speedup = %v: want a concurrent speedup", s.Wall, s.CallsPerSec, s.Speedup())
	}
}

func TestRunCanceled(t *testing.T) {
	_, url := newMockServer(t, MockConfig{LatencyP50: time.Hour})
	c := newClient(t, fastRetry(url))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Cancel once 5 calls are launched: those are parked in the mock's hour-long
	// wait, and Run must cut them short rather than wait.
	var seq iter.Seq2[int, string] = func(yield func(int, string) bool) {
		for i := range 100 {
			if i == 5 {
				cancel()
			}
			if !yield(i, "p") {
				return
			}
		}
	}
	s, err := Run(ctx, c, seq, 10, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if s.Calls == 0 || s.Calls != s.Errors || s.Calls > 6 {
		t.Errorf("Calls = %d, Errors = %d: want the few launched calls, all failed", s.Calls, s.Errors)
	}
	if s.Retries != 0 {
		t.Errorf("Retries = %d: a canceled call must not be retried", s.Retries)
	}
}

// TestRecorder checks the figures Run reports from its calls: nearest-rank
// latencies, over every call, failed ones included.
func TestRecorder(t *testing.T) {
	var r recorder
	for i := range 10 {
		var err error
		if i%5 == 0 {
			err = errors.New("refused")
		}
		r.add(Completion{Latency: time.Duration(10 - i), Attempts: 1 + i%2}, err)
	}
	s := r.stats(time.Second)
	if s.Calls != 10 || s.Errors != 2 || s.Retries != 5 {
		t.Errorf("calls %d, errors %d, retries %d; want 10, 2, 5", s.Calls, s.Errors, s.Retries)
	}
	if s.LatencyP50 != 5 || s.LatencyP99 != 10 || s.SerialEstimate != 55 || s.CallsPerSec != 10 {
		t.Errorf("p50 %d, p99 %d, serial %d, calls/s %v; want 5, 10, 55, 10", s.LatencyP50, s.LatencyP99, s.SerialEstimate, s.CallsPerSec)
	}
	if got := (&recorder{}).stats(0); got != (Stats{}) {
		t.Errorf("no calls: %+v, want zero Stats", got)
	}
}
