package workload

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC() // a second cycle runs the cleanups the first one queued
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// A new model seed per job must not grow a worker by a model each time:
// the cache keeps at most its byte cap of weights, and weights no cached
// workload holds are collected.
func TestCacheBoundsModelMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds six 32 MiB models")
	}
	base := liveHeap()
	var c Cache
	for seed := range uint64(6) {
		if _, err := c.Get("infer", Params{Dim: MaxInferDim, Seed: 1000 + seed}); err != nil {
			t.Fatal(err)
		}
	}
	grown := int64(liveHeap()) - int64(base)
	// Six models are 192 MiB; the cap is 64 MiB, plus the one just built.
	if limit := int64(DefaultCacheBytes + 40<<20); grown > limit {
		t.Errorf("heap grew %d MiB after 6 model seeds, want at most %d MiB", grown>>20, limit>>20)
	}
	runtime.KeepAlive(&c)
}

// Hostile params cannot grow the cache by entries either.
func TestCacheBoundsEntries(t *testing.T) {
	var c Cache
	for i := range 1000 {
		if _, err := c.Get("noop", Params{OutBytes: i + 1}); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Len(); got > cacheEntries {
		t.Errorf("cache holds %d workloads, want at most %d", got, cacheEntries)
	}
}

// A cached workload is the same one on the next Get; a workload bigger
// than the cap is built anew each time and not kept.
func TestCacheWithin(t *testing.T) {
	var c Cache
	a, _ := c.GetWithin("infer", Params{Dim: 64}, 1<<30)
	b, _ := c.GetWithin("infer", Params{Dim: 64}, 1<<30)
	if a != b {
		t.Error("second Get built the workload again")
	}
	x, _ := c.GetWithin("infer", Params{Dim: 128}, 1024)
	if x == nil || c.Len() != 0 {
		t.Errorf("a workload over the cap: got %v, cache holds %d (want it not kept, and the cap evicting the rest)", x, c.Len())
	}
}

func TestResultBytes(t *testing.T) {
	docs := []string{"one two three", "", strings.Repeat("word ", 1000)}
	for _, name := range Names() {
		for _, p := range []Params{{}, {Dim: 16, OutBytes: 100, ChunkTokens: 16}} {
			t.Run(fmt.Sprintf("%s/%+v", name, p), func(t *testing.T) {
				wl := mustNew(t, name, p)
				want, ok := ResultBytes(wl, docs)
				if !ok {
					t.Fatalf("%s does not tell its result size", name)
				}
				out := process(t, wl, docs)
				if got := int64(out.Bytes()); got > want || (name != "chunk" && got != want) {
					t.Errorf("ResultBytes = %d, Process wrote %d bytes", want, got)
				}
			})
		}
	}
}
