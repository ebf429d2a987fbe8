package fleet

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// CPUClock reads the CPU time of this process plus a set of child
// processes, so a report can say what each mode cost in CPU, which a busy
// machine does not skew the way it skews wall time.
type CPUClock struct {
	PIDs func() []int // the child processes to count; nil = none
	// Descendants also counts the processes this one and those of PIDs
	// started, live or reaped (Linux): an exec workload's programs, which
	// do the computing of exec modes. Default off.
	Descendants bool
}

// Now returns the CPU time so far; ok is false where it cannot be read.
func (c CPUClock) Now() (d time.Duration, ok bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	d = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	var pids []int
	if c.PIDs != nil {
		pids = c.PIDs()
	}
	for _, pid := range pids {
		t, err := procCPU(pid)
		if err != nil {
			return 0, false
		}
		d += t
	}
	if c.Descendants {
		d += descendantsCPU(pids)
	}
	return d, true
}

// statFields reads /proc/<pid>/stat from field 3 (state) on: f[0] is
// field 3.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return strings.Fields(s[i+1:]), nil
}

// procCPU reads a process's CPU time: its process CPU clock where the
// kernel gives one (Linux, any process by pid, to the nanosecond), else its
// user and system time from /proc/<pid>/stat (in USER_HZ ticks, 100 per
// second: a 10 ms step per process, which over a half-second run on 2 cores
// is a few percent).
func procCPU(pid int) (time.Duration, error) {
	if d, ok := clockCPU(pid); ok {
		return d, nil
	}
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64) // field 14, utime
	st, err2 := strconv.ParseInt(f[12], 10, 64) // field 15, stime
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// descendantsCPU is the CPU time of the processes this one started (bar
// those in counted, read already) and of theirs, recursively: the live
// ones from /proc/<pid>/stat, the reaped ones from their parent's count of
// waited-for children (getrusage RUSAGE_CHILDREN here, cutime and cstime
// there). A process gone between the listing and the reading is skipped.
func descendantsCPU(counted []int) time.Duration {
	var d time.Duration
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) == nil {
		d += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for _, pid := range counted {
		d += reapedCPU(pid)
	}
	seen := map[int]bool{}
	queue := []int{os.Getpid()}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range childrenOf(pid) {
			if seen[c] {
				continue
			}
			seen[c] = true
			queue = append(queue, c)
			if !slices.Contains(counted, c) {
				if t, err := procCPU(c); err == nil {
					d += t + reapedCPU(c)
				}
			}
		}
	}
	return d
}

// childrenOf lists pid's live children: /proc/<pid>/task/*/children, as
// any of its threads may have started one.
func childrenOf(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// reapedCPU is the CPU time of pid's children it has waited for
// (/proc/<pid>/stat cutime and cstime); 0 when unreadable.
func reapedCPU(pid int) time.Duration {
	f, err := statFields(pid)
	if err != nil || len(f) < 15 {
		return 0
	}
	cu, err1 := strconv.ParseInt(f[13], 10, 64) // field 16, cutime
	cs, err2 := strconv.ParseInt(f[14], 10, 64) // field 17, cstime
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(cu+cs) * 10 * time.Millisecond
}

// ProcessCPU is the CPU time process pid has used so far (see procCPU):
// one process's share, where CPUClock sums.
func ProcessCPU(pid int) (time.Duration, error) { return procCPU(pid) }

// clockCPU reads pid's process CPU clock (clock_getcpuclockid(3): the clock
// ID is MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED), ~pid<<3 | 2), the sum of
// its threads' run time, live and exited. ok is false where there is none.
func clockCPU(pid int) (time.Duration, bool) {
	if runtime.GOOS != "linux" || pid <= 0 {
		return 0, false
	}
	var ts unix.Timespec
	if unix.ClockGettime(int32(^uint32(pid)<<3|2), &ts) != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
