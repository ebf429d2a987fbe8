// Package machine probes the machine and build a run is measured on: Go
// version and platform, CPU count, model and cgroup quota, and the NATS
// server linked in. Commands fill their report's manifest from Probe; the
// report package only renders what they pass it.
//
// It measures no run (coordinator and lab do) and renders nothing (report
// does).
package machine

import (
	"os"
	"runtime"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// Info describes the machine and build. String fields are "" when the
// machine does not say.
type Info struct {
	GoVersion  string // runtime.Version()
	GOOS       string
	GOARCH     string
	NumCPU     int    // logical CPUs
	GOMAXPROCS int    // at the time of the probe
	CPUModel   string // "model name" from /proc/cpuinfo
	NATSServer string // version of the nats-server module linked in (the embedded broker's)
	// CgroupCPU is the cgroup CPU quota: cgroup v2 cpu.max ("max 100000" =
	// none), or v1's quota and period with " (cgroup v1)" after them.
	CgroupCPU string
}

// Probe reads the current machine.
func Probe() Info {
	return Info{
		GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		CPUModel: cpuModel("/proc/cpuinfo"), NATSServer: server.VERSION, CgroupCPU: cgroupCPU("/sys/fs/cgroup"),
	}
}

// cgroupCPU reads the CPU quota under the cgroup mount root.
func cgroupCPU(root string) string {
	if b, err := os.ReadFile(root + "/cpu.max"); err == nil {
		return strings.TrimSpace(string(b))
	}
	q, err1 := os.ReadFile(root + "/cpu/cpu.cfs_quota_us")
	p, err2 := os.ReadFile(root + "/cpu/cpu.cfs_period_us")
	if err1 != nil || err2 != nil {
		return ""
	}
	quota := strings.TrimSpace(string(q))
	if quota == "-1" {
		quota = "max"
	}
	return quota + " " + strings.TrimSpace(string(p)) + " (cgroup v1)"
}

// cpuModel reads the first "model name" of a /proc/cpuinfo.
func cpuModel(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
