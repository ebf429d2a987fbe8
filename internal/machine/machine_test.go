package machine

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestProbe(t *testing.T) {
	m := Probe()
	if m.GoVersion != runtime.Version() || m.GOOS != runtime.GOOS || m.NumCPU < 1 || m.GOMAXPROCS < 1 || m.NATSServer == "" {
		t.Errorf("Probe() = %+v", m)
	}
}

func write(t *testing.T, dir, name, text string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCgroupCPU(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{name: "none", want: ""},
		{name: "v2", files: map[string]string{"cpu.max": "200000 100000\n"}, want: "200000 100000"},
		{name: "v1", files: map[string]string{"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, want: "50000 100000 (cgroup v1)"},
		{name: "v1 unlimited", files: map[string]string{"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, want: "max 100000 (cgroup v1)"},
		{name: "v1 half", files: map[string]string{"cpu/cpu.cfs_quota_us": "-1\n"}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, text := range tt.files {
				write(t, dir, name, text)
			}
			if got := cgroupCPU(dir); got != tt.want {
				t.Errorf("cgroupCPU = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCPUModel(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "cpuinfo", "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n")
	if got, want := cpuModel(filepath.Join(dir, "cpuinfo")), "AMD EPYC 7B13"; got != want {
		t.Errorf("cpuModel = %q, want %q", got, want)
	}
	if got := cpuModel(filepath.Join(dir, "missing")); got != "" {
		t.Errorf("cpuModel of a missing file = %q, want \"\"", got)
	}
}
