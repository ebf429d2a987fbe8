package pipeline

import (
	"sync"
	"time"
)

// stage indexes the pipeline's three stages.
type stage int

const (
	stageChunk stage = iota // CPU: split documents into chunks (coordinator backend)
	stageLLM                // I/O: one completion per chunk (goroutines)
	stageMerge              // CPU: join a document's summaries and embed them
	numStages
)

var stageNames = [numStages]string{"chunk", "llm", "merge"}

// tracker measures when each stage holds work, in O(1) memory: every change
// of a stage's item count first credits the time since the previous change
// to each stage that held work, and to "CPU", "I/O" and "both" (the
// overlap). A stage holds an item from taking it in until handing it on.
type tracker struct {
	mu    sync.Mutex
	start time.Time
	last  time.Time
	held  [numStages]int64
	items [numStages]int64         // items taken in
	first [numStages]time.Duration // offset of the first item taken in; -1 = none yet
	end   [numStages]time.Duration // offset of the last time the stage went idle
	// active is each stage's time holding work; cpu, io and both are the
	// time the CPU stages (chunk or merge), the I/O stage, and both at once did.
	active        [numStages]time.Duration
	cpu, io, both time.Duration
}

func newTracker(start time.Time) *tracker {
	t := &tracker{start: start, last: start}
	for s := range numStages {
		t.first[s] = -1
	}
	return t
}

// add changes stage s's held items by delta (+n taken in, -n handed on).
func (t *tracker) add(s stage, delta int64) {
	if delta == 0 {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advance(now)
	if delta > 0 {
		t.items[s] += delta
		if t.first[s] < 0 {
			t.first[s] = now.Sub(t.start)
		}
	}
	t.held[s] += delta
	if t.held[s] == 0 {
		t.end[s] = now.Sub(t.start)
	}
}

// advance credits the time since the last change. Called with mu held.
func (t *tracker) advance(now time.Time) {
	dt := now.Sub(t.last)
	if dt <= 0 {
		return
	}
	t.last = now
	for s := range numStages {
		if t.held[s] > 0 {
			t.active[s] += dt
		}
	}
	cpu := t.held[stageChunk] > 0 || t.held[stageMerge] > 0
	io := t.held[stageLLM] > 0
	if cpu {
		t.cpu += dt
	}
	if io {
		t.io += dt
	}
	if cpu && io {
		t.both += dt
	}
}
