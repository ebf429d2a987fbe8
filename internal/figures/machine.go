package figures

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/ferrylab/ferry/internal/machine"
)

// Machine is what the figures were measured on.
type Machine struct {
	CPUModel   string  `json:"cpu_model"`
	Cores      int     `json:"cores"`
	MemGiB     float64 `json:"mem_gib,omitempty"`
	GoVersion  string  `json:"go_version"`
	Kernel     string  `json:"kernel,omitempty"`
	NATSServer string  `json:"nats_server"`
	CgroupCPU  string  `json:"cgroup_cpu_max,omitempty"`
	// LoadBefore and LoadAfter are the load averages (1, 5, 15 minutes)
	// when the runs began and ended: other work on the machine skews them.
	LoadBefore string `json:"load_before,omitempty"`
	LoadAfter  string `json:"load_after,omitempty"`
}

// String names the machine in one phrase.
func (m Machine) String() string {
	s := fmt.Sprintf("%s, %d cores", orUnknown(m.CPUModel), m.Cores)
	if m.MemGiB > 0 {
		s += fmt.Sprintf(", %.0f GiB", m.MemGiB)
	}
	if m.Kernel != "" {
		s += ", Linux " + m.Kernel
	}
	s += ", " + m.GoVersion
	if m.LoadBefore != "" {
		s += ", load average " + strings.Fields(m.LoadBefore)[0]
		if m.LoadAfter != "" {
			s += " to " + strings.Fields(m.LoadAfter)[0]
		}
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown CPU"
	}
	return s
}

// Probe reads this machine; LoadAfter is left for the caller.
func Probe() Machine {
	info := machine.Probe()
	return Machine{
		CPUModel: info.CPUModel, Cores: info.NumCPU, MemGiB: memGiB("/proc/meminfo"),
		GoVersion: runtime.Version(), Kernel: firstLine("/proc/sys/kernel/osrelease"),
		NATSServer: info.NATSServer, CgroupCPU: info.CgroupCPU, LoadBefore: LoadAverage(),
	}
}

// LoadAverage is /proc/loadavg's three averages, or "".
func LoadAverage() string {
	f := strings.Fields(firstLine("/proc/loadavg"))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func firstLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line)
}

// memGiB reads MemTotal from a /proc/meminfo.
func memGiB(path string) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		var kb float64
		if _, err := fmt.Sscanf(line, "MemTotal: %f kB", &kb); err == nil {
			return kb / (1 << 20)
		}
	}
	return 0
}

// SaveMachine writes m to dir/machine.json: the machine of the latest run.
func SaveMachine(dir string, m Machine) error {
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "machine.json"), append(b, '\n'), 0o644)
}
