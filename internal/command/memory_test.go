package command

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// TestMillionDocumentsMemory runs a 1,000,000-document embed job with
// --out and checks the peak RSS (the kernel's maxrss of the ferry process
// and of its largest reaped child) stays under 200 MB: the coordinator
// streams and bounds its in-flight window. It takes about a minute and
// writes 1.5 GB, so it runs only with FERRY_MEMTEST=1.
func TestMillionDocumentsMemory(t *testing.T) {
	if os.Getenv("FERRY_MEMTEST") != "1" {
		t.Skip("set FERRY_MEMTEST=1 to run the 1,000,000-document memory check (about a minute, 1.5 GB of output)")
	}
	for _, batch := range []string{"fixed", "auto"} {
		t.Run("batch="+batch, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "vecs.npy")
			cmd := exec.Command(ferryBin, "run", "-q", "--modes", "processes", "--docs", "1000000", "--batch", batch, "--out", out)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v\n%s", err, b)
			}
			st, err := os.Stat(out)
			if err != nil || st.Size() != 128+1_000_000*384*4 {
				t.Fatalf("output: %v, %v", st, err)
			}
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			mb := float64(ru.Maxrss) / 1024 // Linux reports KiB
			t.Logf("peak RSS of ferry run (coordinator + embedded broker), batch=%s: %.1f MB", batch, mb)
			if mb >= 200 {
				t.Errorf("peak RSS %.1f MB, want under 200 MB", mb)
			}
		})
	}
}
