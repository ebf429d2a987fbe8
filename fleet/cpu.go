package fleet

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPUClock reads the CPU time of this process plus a set of child
// processes, so a report can say what each mode cost in CPU, which a busy
// machine does not skew the way it skews wall time.
type CPUClock struct {
	PIDs func() []int // the child processes to count; nil = none
}

// Now returns the CPU time so far; ok is false where it cannot be read.
func (c CPUClock) Now() (d time.Duration, ok bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	d = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if c.PIDs == nil {
		return d, true
	}
	for _, pid := range c.PIDs() {
		t, err := procCPU(pid)
		if err != nil {
			return 0, false
		}
		d += t
	}
	return d, true
}

// procCPU reads a process's user and system time from /proc/<pid>/stat
// (Linux; in USER_HZ ticks, 100 per second).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
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

// ProcessCPU is the user and system time process pid has used so far
// (Linux /proc, to 10 ms ticks): one process's share, where CPUClock sums.
func ProcessCPU(pid int) (time.Duration, error) { return procCPU(pid) }
