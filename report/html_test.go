package report

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrylab/ferry/internal/machine"
	"github.com/ferrylab/ferry/lab/sweep"
)

// syntheticSweep builds a sweep whose runs follow a known model:
// goroutines t(b) = 2 + 100b us, processes t(b) = 300 + 101b us per batch,
// with +-2% spread across three repeats, at 1, 2 and 4 workers.
func syntheticSweep() *SweepReport {
	var recs []sweep.Record
	seq := 0
	for rep, noise := range []float64{0.98, 1.0, 1.02} {
		for _, w := range []int{1, 2, 4} {
			for _, mode := range []string{"goroutines", "processes"} {
				for _, b := range []int{1, 4, 16, 64, 256, 1024, 0} {
					a, c := 2.0, 100.0
					if mode == "processes" {
						a, c = 300, 101
					}
					bb := float64(b)
					if b == 0 {
						bb = 80
					}
					t := (a + c*bb) * noise
					par := float64(min(w, 2)) // two cores
					r := sweep.Record{Seq: seq, Repeat: rep, Point: sweep.Point{Mode: mode, Workers: w, BatchSize: b, Codec: "packed", Workload: "spin", SpinCost: 100 * time.Microsecond},
						Docs: 5000, DocsPerS: par * bb / t * 1e6, MeanBatch: bb, ComputeUs: c * bb}
					r.BatchUs = float64(w) * bb / r.DocsPerS * 1e6
					if mode == "processes" {
						r.EncodeUs, r.TransportUs, r.WorkerDecodeUs, r.WorkerEncodeUs, r.DecodeUs = 20, a-60, 20, 10, 10
						r.QueueUs = c * bb / 2 // waiting behind the batch before
						r.Overhead = a / (a + c*bb)
					}
					recs = append(recs, r)
					seq++
				}
			}
		}
	}
	res := sweep.Analyze(recs, 0.05, 1)
	res.Seed = 1
	r := NewSweep(machine.Info{GOMAXPROCS: 2}, map[string]any{"workload": "spin", "spin_cost": "100us", "seed": 1}, res)
	return r
}

func TestWriteHTMLHasEveryChartAndTheManifest(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteHTML(&buf, syntheticSweep()); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{
		"Throughput vs batch size", "Process overhead vs batch size", "Per-batch time split (processes)", "Scaling vs workers",
		"break-even: predicted", "Run manifest", "GOMAXPROCS", "cgroup CPU quota", "nats-server", "CPU model",
		"<svg", "<polyline", "batch 64, transport: ", "batch 64, queue: ",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{"NaN", "Inf", "<script", "http://", "https://"} {
		if strings.Contains(strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, ""), bad) {
			t.Errorf("page contains %q (must be self-contained and finite)", bad)
		}
	}
}

func TestSweepJSONRoundTripsIntoDiff(t *testing.T) {
	dir := t.TempDir()
	a, b := syntheticSweep(), syntheticSweep()
	for i := range b.Sweep.Records { // B is 10% faster on processes
		if b.Sweep.Records[i].Mode == "processes" {
			b.Sweep.Records[i].DocsPerS *= 1.10
		}
	}
	write := func(name string, r *SweepReport) string {
		p := filepath.Join(dir, name)
		var buf bytes.Buffer
		if err := WriteSweep(&buf, r, "json"); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(p, buf.Bytes(), 0o644)
		return p
	}
	sa, err := LoadSamples(write("a.json", a))
	if err != nil {
		t.Fatal(err)
	}
	sb, err := LoadSamples(write("b.json", b))
	if err != nil {
		t.Fatal(err)
	}
	rows := Diff(sa, sb)
	var faster, same int
	for _, r := range rows {
		if r.Metric != "docs_per_s" {
			continue
		}
		switch {
		case strings.Contains(r.Key, "mode=processes") && r.Significant && r.Delta > 0.09 && r.Delta < 0.11:
			faster++
		case strings.Contains(r.Key, "mode=goroutines") && !r.Significant && r.Delta == 0:
			same++
		default:
			t.Errorf("row %+v", r)
		}
	}
	if faster != 21 || same != 21 {
		t.Errorf("faster = %d, same = %d; want 21 and 21", faster, same)
	}
	var out bytes.Buffer
	if err := WriteDiff(&out, sa, sb, rows); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "+10.00% (ranges apart)") || !strings.Contains(out.String(), "~ (ranges overlap)") {
		t.Errorf("diff output:\n%s", out.String())
	}
}

func TestSyntheticBreakEvenMatchesTheModel(t *testing.T) {
	r := syntheticSweep()
	for _, be := range r.Sweep.BreakEvens {
		if be.Workers != 2 {
			continue
		}
		// (0.95*300 - 2) / (100 - 0.95*101) = 283 / 4.05
		if want := 283 / 4.05; be.Predicted < want*0.98 || be.Predicted > want*1.02 {
			t.Errorf("predicted = %.1f, want %.1f", be.Predicted, want)
		}
		if be.Observed < 64 || be.Observed > 256 {
			t.Errorf("observed = %.1f, want between 64 and 256", be.Observed)
		}
		return
	}
	t.Fatal("no break-even at 2 workers")
}

// chromium finds a headless Chromium, or skips.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium on PATH: install Debian's chromium package (apt-get install -y chromium) to check the report renders")
	return ""
}

// render loads the HTML file in headless Chromium, saves a screenshot next
// to it and returns the page's console messages and the rendered DOM.
func render(t *testing.T, bin, html, png string) (console []string, dom string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	profile := t.TempDir()
	base := []string{"--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--user-data-dir=" + profile,
		"--enable-logging=stderr", "--v=0", "--window-size=1200,2000"}
	shot := exec.CommandContext(ctx, bin, append(base, "--screenshot="+png, "file://"+html)...)
	var stderr bytes.Buffer
	shot.Stderr = &stderr
	if err := shot.Run(); err != nil {
		t.Fatalf("chromium screenshot: %v\n%s", err, stderr.String())
	}
	dump := exec.CommandContext(ctx, bin, append(base, "--dump-dom", "file://"+html)...)
	var out, stderr2 bytes.Buffer
	dump.Stdout, dump.Stderr = &out, &stderr2
	if err := dump.Run(); err != nil {
		t.Fatalf("chromium dump-dom: %v\n%s", err, stderr2.String())
	}
	for _, line := range strings.Split(stderr.String()+stderr2.String(), "\n") {
		if strings.Contains(line, "CONSOLE") {
			console = append(console, line)
		}
	}
	return console, out.String()
}

func TestHTMLRendersInChromiumWithoutConsoleErrors(t *testing.T) {
	bin := chromium(t)
	dir := t.ArtifactDir()
	html := filepath.Join(dir, "report.html")
	var buf bytes.Buffer
	if err := WriteHTML(&buf, syntheticSweep()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(html, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(dir, "report.png")
	console, dom := render(t, bin, html, png)
	if len(console) > 0 {
		t.Errorf("console messages:\n%s", strings.Join(console, "\n"))
	}
	if n := strings.Count(dom, "<svg"); n < 4 {
		t.Errorf("rendered DOM has %d svg charts, want at least 4", n)
	}
	if st, err := os.Stat(png); err != nil || st.Size() < 10_000 {
		t.Errorf("screenshot %s: %v (size %v)", png, err, st)
	}
	t.Logf("screenshot: %s", png)

	// The console check itself: a page with a script error must be caught.
	broken := filepath.Join(dir, "broken.html")
	os.WriteFile(broken, []byte(`<!DOCTYPE html><html><body><script>console.error("boom"); undefinedFn();</script></body></html>`), 0o644)
	if console, _ := render(t, bin, broken, filepath.Join(dir, "broken.png")); len(console) == 0 {
		t.Error("a page with a script error showed no console message: the check cannot see errors")
	}
}

// The JSON of a sweep has no NaN or Inf (encoding/json refuses them).
func TestSweepJSONEncodes(t *testing.T) {
	r := syntheticSweep()
	if _, err := json.Marshal(r); err != nil {
		t.Fatal(err)
	}
}
