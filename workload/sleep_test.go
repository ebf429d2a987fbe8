package workload

import (
	"bytes"
	"testing"
	"time"
)

// sleep's result bytes are spin's: emulating the compute changes the time
// it takes, never what it produces.
func TestSleepProducesSpinsBytes(t *testing.T) {
	p := Params{SpinCostNs: 1000, OutBytes: 1536}
	spin := process(t, mustNew(t, "spin", p), testDocs)
	sleep := process(t, mustNew(t, "sleep", p), testDocs)
	if !bytes.Equal(outputBytes(spin), outputBytes(sleep)) {
		t.Fatal("sleep's output differs from spin's")
	}
	if got, want := len(sleep.Data), 1536*len(testDocs); got != want {
		t.Fatalf("len(Data) = %d, want %d", got, want)
	}
}

// The wait is at least the cost per document (a lower bound only: a timer
// never fires early, and how late it fires is the machine's business).
func TestSleepWaitsAtLeastItsCost(t *testing.T) {
	w := mustNew(t, "sleep", Params{SpinCostNs: int64(time.Millisecond)})
	start := time.Now()
	process(t, w, make([]string, 5))
	if got := time.Since(start); got < 5*time.Millisecond {
		t.Fatalf("5 documents at 1ms took %v", got)
	}
	if e, ok := w.(Emulator); !ok || !e.Emulated() {
		t.Fatal("sleep does not report itself emulated")
	}
	if _, ok := mustNew(t, "spin", Params{}).(Emulator); ok {
		t.Fatal("spin reports itself emulated")
	}
}
