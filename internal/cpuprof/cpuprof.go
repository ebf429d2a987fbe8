// Package cpuprof splits a process's CPU time into parts (compute, encode,
// decode, copies, allocation and GC, the NATS client, the broker, system
// calls, the scheduler, ferry's own bookkeeping) by classifying the stacks
// of a CPU profile taken over the same interval as the process's CPU clock,
// so a report can say where ferry's own CPU per document goes instead of
// computing it by subtraction.
//
// It measures by sampling (runtime/pprof, Hz samples per CPU second); the
// sampled total is compared with the process's clock (getrusage), and a
// report says when the two disagree. A Stopwatch times one stretch of code
// (a worker's batch handler) exactly, by its thread's CPU clock. It is not
// a profiler for people: use FERRY_CPUPROFILE (internal/profile) and `go
// tool pprof` for that.
package cpuprof

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// Part is one share of a process's CPU.
type Part int

// The parts, in the order a report prints them.
const (
	Compute   Part = iota // the workload (workload, bridge): what goroutines mode pays too
	Encode                // proto codecs writing a batch or a result
	Decode                // proto codecs reading a batch or a result
	Copies                // memmove and memclr outside the codecs and the workload
	Alloc                 // mallocgc and the garbage collector (mark, sweep, assists)
	NATS                  // the NATS client (nats.go), bar its system calls and copies
	Broker                // the embedded nats-server, all of it
	Syscalls              // system calls: socket reads and writes, futex, epoll
	Scheduler             // the Go scheduler: finding, parking and waking goroutines
	Ferry                 // ferry's own bookkeeping: collector, queue, link, worker, sink, digest
	Other                 // anything else
	NumParts
)

var partNames = [NumParts]string{"compute", "encode", "decode", "copies", "alloc_gc", "nats_client", "broker", "syscalls", "scheduler", "ferry", "other"}

func (p Part) String() string {
	if p < 0 || p >= NumParts {
		return fmt.Sprintf("part(%d)", int(p))
	}
	return partNames[p]
}

// Parts is CPU time per part.
type Parts [NumParts]time.Duration

// Sum is the CPU of every part.
func (p *Parts) Sum() time.Duration {
	var s time.Duration
	for _, d := range p {
		s += d
	}
	return s
}

// Add adds q to p part by part.
func (p *Parts) Add(q *Parts) {
	for i := range p {
		p[i] += q[i]
	}
}

const (
	ferryPkg  = "github.com/ferrylab/ferry/"
	serverPkg = "github.com/nats-io/nats-server/"
	clientPkg = "github.com/nats-io/nats.go"
)

// Classify returns the part one sample belongs to, given its stack's
// function names, innermost (leaf) first. The first rule that matches wins:
// the broker and the workload take their whole stacks (their own copies,
// system calls and allocations included, as in goroutines mode for the
// workload); then allocation and GC anywhere; then the codecs; then copies,
// system calls and scheduling by the leaf; then the NATS client; then
// ferry's own frames.
func Classify(stack []string) Part {
	has := func(match func(string) bool) bool {
		for _, f := range stack {
			if match(f) {
				return true
			}
		}
		return false
	}
	switch {
	case has(func(f string) bool { return strings.HasPrefix(f, serverPkg) }):
		return Broker
	case has(isCompute):
		return Compute
	case has(isAlloc):
		return Alloc
	case has(isEncode):
		return Encode
	case has(isDecode):
		return Decode
	}
	leaf := ""
	if len(stack) > 0 {
		leaf = stack[0]
	}
	switch {
	case isCopy(leaf):
		return Copies
	case isSyscall(leaf):
		return Syscalls
	case has(isScheduler):
		return Scheduler
	case has(func(f string) bool { return strings.HasPrefix(f, clientPkg) }):
		return NATS
	case has(func(f string) bool { return strings.HasPrefix(f, ferryPkg) }):
		return Ferry
	}
	return Other
}

func isCompute(f string) bool {
	return strings.HasPrefix(f, ferryPkg+"workload.") || strings.HasPrefix(f, ferryPkg+"bridge.")
}

func isAlloc(f string) bool {
	switch f {
	case "runtime.mallocgc", "runtime.gcBgMarkWorker", "runtime.bgsweep", "runtime.bgscavenge",
		"runtime.gcAssistAlloc", "runtime.gcStart", "runtime.GC", "runtime.gcMarkDone", "runtime.gcMarkTermination",
		"runtime.gcDrain", "runtime.markroot", "runtime.scanobject", "runtime.sweepone", "runtime.(*mheap).alloc",
		"runtime.newobject", "runtime.makeslice", "runtime.growslice", "runtime.gcWriteBarrier", "runtime.wbBufFlush":
		return true
	}
	return strings.HasPrefix(f, "runtime.mallocgc") || strings.HasPrefix(f, "runtime.gcBgMarkWorker")
}

// isEncode and isDecode match the codecs' entry points (proto.Codec's
// methods, the compression wrapper's included) and their helpers.
func isEncode(f string) bool {
	if !strings.HasPrefix(f, ferryPkg+"proto.") {
		return false
	}
	n := f[len(ferryPkg+"proto."):]
	return strings.Contains(n, "Append") || strings.HasPrefix(n, "append") || strings.Contains(n, "encode") || strings.Contains(n, "Encode")
}

func isDecode(f string) bool {
	if !strings.HasPrefix(f, ferryPkg+"proto.") {
		return false
	}
	n := f[len(ferryPkg+"proto."):]
	return strings.Contains(n, "Decode") || strings.Contains(n, "decode") || strings.Contains(n, "reader") || strings.HasPrefix(n, "check")
}

func isCopy(leaf string) bool {
	return strings.HasPrefix(leaf, "runtime.memmove") || strings.HasPrefix(leaf, "runtime.memclr")
}

func isSyscall(leaf string) bool {
	switch leaf {
	case "runtime.futex", "runtime.epollwait", "runtime.usleep", "runtime.osyield", "runtime.write1", "runtime.read",
		"runtime.nanosleep", "runtime.madvise", "runtime.mmap", "runtime.munmap", "runtime.sched_yield", "runtime.tgkill",
		"runtime.sigprocmask", "runtime.rtsigprocmask", "runtime.setitimer", "runtime.timer_settime":
		return true
	}
	return strings.HasPrefix(leaf, "syscall.") || strings.HasPrefix(leaf, "internal/runtime/syscall.") ||
		strings.HasPrefix(leaf, "golang.org/x/sys/unix.")
}

func isScheduler(f string) bool {
	switch f {
	case "runtime.schedule", "runtime.findRunnable", "runtime.park_m", "runtime.goschedImpl", "runtime.mcall",
		"runtime.ready", "runtime.goready", "runtime.wakep", "runtime.startm", "runtime.stopm", "runtime.notewakeup",
		"runtime.notesleep", "runtime.sysmon", "runtime.netpoll", "runtime.gopark", "runtime.stealWork", "runtime.runqsteal":
		return true
	}
	return false
}

// Profile is one process's CPU over an interval: its clock and its samples.
type Profile struct {
	Name    string        // the process, as a report names it
	Clock   time.Duration // CPU time by the process's clock (getrusage) over the interval
	Sampled time.Duration // CPU time the profile's samples stand for
	Parts   Parts         // Sampled, split; Parts.Sum() == Sampled
	Samples int           // samples the profile holds
	// Handler is the CPU of the process's batch handler by its thread's
	// clock (Stopwatch), HandlerSampled what the samples under it stand for
	// (a worker's; 0 elsewhere): sampling misses a share of each thread,
	// the handler's included, and Handler/HandlerSampled is that share.
	Handler, HandlerSampled time.Duration
	// Own is what the samples of ferry's own work stand for: its codecs,
	// its bookkeeping, and the copies and allocations its code makes (not
	// those the NATS client, the broker, the workload or the GC make).
	Own time.Duration
	// Faults counts the process's minor page faults over the interval:
	// first touches of fresh memory, whose kernel time the samples put on
	// the copy or the zeroing that touched it.
	Faults int64
}

// IsOwn reports whether a sample of part, with stack (leaf first), is
// ferry's own work: encode, decode and ferry are; copies and allocations
// are when the first frame outside the runtime that made them is ferry's.
func IsOwn(part Part, stack []string) bool {
	switch part {
	case Encode, Decode, Ferry:
		return true
	case Copies, Alloc:
		for _, f := range stack {
			if strings.HasPrefix(f, "runtime.") || strings.HasPrefix(f, "internal/") {
				continue
			}
			return strings.HasPrefix(f, ferryPkg)
		}
	}
	return false
}

// handlerFrame is the batch handler Stopwatch times in a worker.
const handlerFrame = ferryPkg + "worker.(*Worker).handle"

// Parse classifies a gzipped pprof CPU profile (runtime/pprof's output)
// into parts. An empty profile (the process was already profiled
// elsewhere) has no samples.
func Parse(name string, clock time.Duration, data []byte) (Profile, error) {
	pr := Profile{Name: name, Clock: clock}
	if len(data) == 0 {
		return pr, nil
	}
	p, err := profile.Parse(bytes.NewReader(data))
	if err != nil {
		return pr, fmt.Errorf("cpuprof: %s: %w", name, err)
	}
	cpu, count := -1, -1 // the values' indices: CPU nanoseconds, samples
	for i, t := range p.SampleType {
		switch t.Type {
		case "cpu":
			cpu = i
		case "samples":
			count = i
		}
	}
	if cpu < 0 {
		return pr, fmt.Errorf("cpuprof: %s: profile has no cpu samples", name)
	}
	var stack []string
	for _, s := range p.Sample {
		if cpu >= len(s.Value) {
			continue
		}
		stack = stack[:0]
		for _, loc := range s.Location { // innermost first; inlined calls innermost first within one
			for _, ln := range loc.Line {
				if ln.Function != nil {
					stack = append(stack, ln.Function.Name)
				}
			}
		}
		part := Classify(stack)
		pr.Parts[part] += time.Duration(s.Value[cpu])
		if IsOwn(part, stack) {
			pr.Own += time.Duration(s.Value[cpu])
		}
		if slices.Contains(stack, handlerFrame) {
			pr.HandlerSampled += time.Duration(s.Value[cpu])
		}
		if count >= 0 && count < len(s.Value) {
			pr.Samples += int(s.Value[count])
		}
	}
	pr.Sampled = pr.Parts.Sum()
	return pr, nil
}
