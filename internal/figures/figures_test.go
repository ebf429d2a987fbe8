package figures

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// root is the repository root, from this package's folder.
const root = "../.."

// TestBlocksMatchData: every figure block of README.md and docs/*.md names
// a generator and holds exactly what it renders from the committed data in
// docs/figures, so a hand edit of a figure fails here. Run
// `scripts/figures.sh --render` after changing a renderer, or
// `scripts/figures.sh` to measure again.
func TestBlocksMatchData(t *testing.T) {
	docs, err := Documents(root)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, path := range docs {
		b, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Fatal(err)
		}
		bs, err := Blocks(string(b))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		for _, bl := range bs {
			seen[bl.Name] = true
			if _, ok := Registry[bl.Name]; !ok {
				t.Errorf("%s: figure:%s has no generator in Registry", path, bl.Name)
				continue
			}
			want, err := Rendering(filepath.Join(root, DataDir), path, bl.Name)
			if err != nil {
				t.Errorf("%s: figure:%s: %v", path, bl.Name, err)
				continue
			}
			if got := strings.TrimRight(bl.Content, "\n"); got != want {
				t.Errorf("%s: figure:%s differs from its rendering of docs/figures (hand-edited? run scripts/figures.sh --render):\n got: %.300q\nwant: %.300q",
					path, bl.Name, got, want)
			}
		}
	}
	// Every generator has its block somewhere (none is dead).
	for name := range Registry {
		if !seen[name] {
			t.Errorf("no document holds figure:%s", name)
		}
	}
}

// pending is the documents not converted yet: their measured figures are
// still typed by hand. Each must still have some (else it leaves this
// list). Empty: every document is converted; list one here while
// converting it.
var pending = map[string]string{}

// allowed is, per document, lines whose numbers are not measurements:
// goals, defaults, limits, samples of a log line or an error message.
var allowed = map[string][]string{
	"README.md": {
		"256 MB is generated once",                    // a threshold (the in-memory corpus)
		"64 B to 4 MiB",                               // bench transport's default sizes
		"-fuzztime 10000000x",                         // a count of fuzz inputs
		"speedup / workers (1.00x = perfect scaling)", // the column table's definition
		"confidence 1 - 2^(1-n) (75% at 3,",           // arithmetic of the min..max interval, not a measurement
		"94% at 5; `--repeat 5` for the latter)",      // the same
		"preempts it, after about 10 ms",              // the Go scheduler's preemption interval
		"is more than 10% off the",                    // the breakdown's threshold for DISAGREE
	},
	"docs/capacity.md": {
		"runs whose batches wait 10 ms", // the calibration's design
	},
	"docs/protocol.md": { // limits and a worked example's values
		"1 MiB per document, nesting depth 16",
		"`max_payload` (8 MiB by default)",
		"1 ns to 24 h",
		"A reply of 1,500 ns",
		"Frames are at most 64 MiB",
	},
	"docs/auth.md": { // limits and their defaults
		"broker `max_payload`, 8 MiB",
		"`max_doc_bytes`, 1 MiB",
		"out_bytes ≤ 1 MiB",
		"64 messages and 64 MiB per batch subscription",
		"most 8x its size + 1 MiB in the test process", // the bound the hostile test asserts
	},
	"docs/faults.md": { // settings, limits, backoffs and the hostile test's inputs
		"100,000 documents x 1 MiB of output",
		"restarts back off (50 ms doubling to 5 s)",
		"no reply in time (300ms)",
		"re-sent with backoff (25 ms doubling, with jitter)",
		"misses 3 discovery rounds** (about 1.2 s)",
		"unlimited reconnects (250 ms wait with",
		"a 64 MiB reconnect buffer and a 2 s ping interval",
		"100% CPU, deaf to",
		"--input big.txt --workload spin --spin-cost 200us",
		"64 MiB: one infer model at dim 1024",
		"instead of adding 32 MiB for good",
		"a few bytes claiming 8 MiB cost nothing",
		"decode to 8 MiB (`TestCompressedCorruptCostsNothing`",
		"address space at 768 MiB over its size",
		"asking noop and spin for 1 MiB per document",
		"(640 MiB of weights if none were evicted)",
		"in batches of 500 (32 MiB",
		"batches that fit 8 MiB, with serial's output",
		"restarts grow from 50 ms, doubling,",
		"up to 5 s (cenkalti/backoff, ±20%)",
		"is restarted after 50 ms, as before",
		"restarted them every 50 ms forever",
		"spin at 1 ns a",
	},
	"docs/lab.md": { // defaults, levels, the model's constants, a progress bar's look
		"`--point-time` (300 ms)",
		"| `worker_counts` | 1..2x usable cores |",
		"| `point_time` | 300ms |",
		"goroutines w=1 b=256   52% |",
		"near the 95% line",
		"`predicted` is b* at L = 95%",
		"where they cross 95%,",
		"default 5% it is b* rounded up",
		"**90% bootstrap intervals**",
		"level off just above the 95% line",
		"`spin` at 100 us per document",
		"never falls below 10 us of bookkeeping",
		"100 ms of compute each (Dask's rule",
		"the 100 ms rule it matches it",
		"moves at most 2x per",
		"holds still while the model is within 15%",
		"within 5% there",
		"with the 5% line",
		"`--out vecs.npy` (1.5 GB)",
		"above the 95% line, and the crossing",
		"across sweeps. A 25%",
		"reaches 95% of processes', predicted", // the CPU break-even's level
		"with its 90% bootstrap",               // the interval's level
	},
	"docs/docker.md": {
		"a 40,000-doc `spin` job (300 µs/doc, 800 batches)", // the test's job
		// native histograms' configuration (their schema's resolution and
		// the classic buckets' bounds), not measurements
		"reads a p99 within about 5%",
		"10 us to 84 s in factor-2 steps",
	},
	"docs/shm.md": {
		"(32 MiB at most with the defaults)", // 2 x pairs (inflight 2) x max_payload (8 MiB): a bound from the defaults
	},
	"docs/wire.md": {
		"stage columns show at 1 MiB",  // a payload size
		"4 MiB in powers of 4",         // the default sizes
		"cannot reach 0.9x on 2 cores", // a goal
		"when it fits in 256 MB",       // a threshold
	},
	"docs/matrix.md": {
		`msg="mockllm ready"`,                                              // the log line echoes the flags
		"first error: call 0: llm: complete (attempt 2 of 2",               // a sample error message
		"the goals on 2 cores: gil at most 1.1x, goroutines at least 1.8x", // goals
		"the goal for infer at the default batch: at least 0.9x",           // a goal
		"every call done in at most 1.0 s wall",                            // a goal
	},
}

// TestNoFigureOutsideBlocks: no measured figure is typed by hand in
// README.md or docs/*.md: outside the generated blocks, the figure
// heuristic finds nothing but the allowed lines.
func TestNoFigureOutsideBlocks(t *testing.T) {
	docs, err := Documents(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range docs {
		b, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Fatal(err)
		}
		md := string(b)
		fs, err := Scan(md, allowed[path])
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if reason, ok := pending[path]; ok {
			if len(fs) == 0 {
				t.Errorf("%s has no hand-typed figure left: remove it from pending", path)
			} else {
				t.Logf("%s: %d hand-typed figures still pending (%s)", path, len(fs), reason)
			}
			continue
		}
		for _, f := range fs {
			t.Errorf("%s: a measured figure outside any figure block, %s: generate it (internal/figures) or drop the number", path, f)
		}
	}
}

// TestScanFinds: the heuristic catches the kinds of figure the README used
// to type by hand, and skips blocks, inline code and commands.
func TestScanFinds(t *testing.T) {
	tests := []struct {
		name string
		md   string
		want []string
	}{
		{"ratio", "goroutines 1.87x of serial", []string{"1.87x"}},
		{"rate", "5.4 GFLOP/s per core and 45,000 docs/s", []string{"5.4 GFLOP/s", "45,000 docs/s"}},
		{"times", "raw NATS echo 97 us, in 0.78 s wall, 12ms", []string{"97 us", "0.78 s", "12ms"}},
		{"share and size", "43% of it; took 1.98 GB", []string{"43%", "1.98 GB"}},
		{"inline code", "run `ferry run --spin-cost 200us` now", nil},
		{"command", "$ ferry llm --latency-p50 500ms", nil},
		{"block", "<!-- figure:x -->\n1.02x\n<!-- /figure:x -->\n", nil},
		{"comment", "<!-- 3.5x\n1.2x -->\n", nil},
		{"plain numbers", "100 documents of 384 floats, 2 cores", nil},
		{"allowed", "256 MB is generated once", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := Scan(tt.md, []string{"256 MB is generated once"})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range fs {
				got = append(got, f.Text)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("Scan(%q) = %q, want %q", tt.md, got, tt.want)
			}
		})
	}
}

func TestBlocks(t *testing.T) {
	tests := []struct {
		name    string
		md      string
		want    []string // names
		wantErr bool
	}{
		{"two", "a\n<!-- figure:x -->\nold\n<!-- /figure:x -->\nb\n<!-- figure:y -->\n<!-- /figure:y -->\n", []string{"x", "y"}, false},
		{"unclosed", "<!-- figure:x -->\nold\n", nil, true},
		{"nested", "<!-- figure:x -->\n<!-- figure:y -->\n<!-- /figure:y -->\n<!-- /figure:x -->\n", nil, true},
		{"mismatched", "<!-- figure:x -->\n<!-- /figure:y -->\n", nil, true},
		{"stray close", "<!-- /figure:x -->\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs, err := Blocks(tt.md)
			if (err != nil) != tt.wantErr || err != nil && !errors.Is(err, ErrBlock) {
				t.Fatalf("Blocks: err = %v, want error %v", err, tt.wantErr)
			}
			var got []string
			for _, b := range bs {
				got = append(got, b.Name)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("names = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRewrite(t *testing.T) {
	md := "intro\n<!-- figure:x -->\nold 1.0x\n<!-- /figure:x -->\nmiddle\n<!-- figure:y -->\n<!-- /figure:y -->\nend\n"
	got, err := Rewrite(md, func(name string) (string, error) { return "new " + name + "\n", nil })
	if err != nil {
		t.Fatal(err)
	}
	want := "intro\n<!-- figure:x -->\nnew x\n<!-- /figure:x -->\nmiddle\n<!-- figure:y -->\nnew y\n<!-- /figure:y -->\nend\n"
	if got != want {
		t.Errorf("Rewrite =\n%s\nwant\n%s", got, want)
	}
	again, err := Rewrite(got, func(name string) (string, error) { return "new " + name, nil })
	if err != nil || again != got {
		t.Errorf("Rewrite is not idempotent: %q, %v", again, err)
	}
}

// TestRenderingDetectsHandEdit: changing one digit of a rendered block
// makes it differ from its rendering.
func TestRenderingDetectsHandEdit(t *testing.T) {
	dir := filepath.Join(root, DataDir)
	want, err := Rendering(dir, "README.md", "matrix")
	if err != nil {
		t.Fatal(err)
	}
	i := strings.IndexAny(want, "123456789")
	edited := want[:i] + string('0'+(want[i]-'0'+1)%10) + want[i+1:]
	if edited == want {
		t.Fatal("edit changed nothing")
	}
	md := "<!-- figure:matrix -->\n" + edited + "\n<!-- /figure:matrix -->\n"
	bs, err := Blocks(md)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimRight(bs[0].Content, "\n") == want {
		t.Error("a hand-edited block equals its rendering")
	}
}

// TestReadmeAndMatrixAgree: the infer figure the README and docs/matrix.md
// both quote is one string rendered from one data file.
func TestReadmeAndMatrixAgree(t *testing.T) {
	dir := filepath.Join(root, DataDir)
	d, err := Load(dir, "matrix")
	if err != nil {
		t.Fatal(err)
	}
	m, err := loadMatrix(d)
	if err != nil {
		t.Fatal(err)
	}
	cell := m.inferCell()
	for _, path := range []string{"README.md", "docs/matrix.md"} {
		b, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), cell) {
			t.Errorf("%s does not quote the infer figures %q", path, cell)
		}
	}
}

// TestMeasure runs a stand-in for ferry (a shell script printing a fixed
// report) through Measure: every JSON command each round, text samples
// and Once commands in the first round only, the command as a reader
// types it, and an error for output that is not JSON.
func TestMeasure(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "ferry")
	script := `#!/bin/sh
case "$*" in
*"--format json"*) case "$1" in bad) echo 'not json';; *) echo '{"modes":[{"mode":"serial","docs_per_s":10,"new_field":1}]}';; esac;;
*) echo "text of $1";;
esac
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	set := Set{Name: "t", Cmds: []Cmd{
		{Key: "a", Args: []string{"run", "--docs", "100"}, Quick: []string{"run", "--docs", "1"}},
		{Key: "b", Args: []string{"llm", "--exec", "python3 w.py"}, Text: true},
		{Key: "c", Args: []string{"capacity"}, Once: true},
	}}
	d, err := Measure(context.Background(), set, Options{Bin: bin, Quick: true, Repeats: 2})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range d.Runs {
		keys = append(keys, r.Key)
	}
	if got, want := strings.Join(keys, ","), "a,b,c,a"; got != want {
		t.Errorf("runs = %s, want %s", got, want)
	}
	if got, want := d.Of("a")[0].Command, "ferry run --docs 1"; got != want {
		t.Errorf("command = %q, want %q (quick args)", got, want)
	}
	if got, want := d.Of("b")[0].Command, "ferry llm --exec 'python3 w.py'"; got != want {
		t.Errorf("command = %q, want %q", got, want)
	}
	if got, want := d.Of("b")[0].Text, "text of llm\n"; got != want {
		t.Errorf("text = %q, want %q", got, want)
	}
	rs, err := decode[runReport](d.Of("a"))
	if err != nil || len(rs) != 2 || rs[1].Modes[0].DocsPerS != 10 {
		t.Errorf("decode = %+v, %v", rs, err)
	}
	if !d.Quick || d.Repeats != 2 || d.Machine.Cores < 1 || d.Machine.GoVersion == "" {
		t.Errorf("data = quick %v repeats %d machine %+v", d.Quick, d.Repeats, d.Machine)
	}
	if err := d.Save(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir, "t")
	if err != nil || len(back.Runs) != 4 || !json.Valid(back.Runs[0].Output) {
		t.Errorf("Load after Save = %+v, %v", back, err)
	}

	sh := Set{Name: "sh", Cmds: []Cmd{
		{Key: "s", Sh: true, Env: []string{"FIGURES_T=from-env"}, Args: []string{"echo hi; echo $FIGURES_T"}},
		{Key: "f", Sh: true, Args: []string{"echo '--- FAIL: TestX (0.01s)'; exit 1"}},
	}}
	ds, err := Measure(context.Background(), sh, Options{Bin: bin, Repeats: 3, Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Runs) != 2 || ds.Runs[0].Text != "hi\nfrom-env\n" || ds.Runs[0].Command != "FIGURES_T=from-env echo hi; echo $FIGURES_T" {
		t.Errorf("shell runs = %+v, want one run printing hi and the env, and the failed one", ds.Runs)
	}
	if f := ds.Of("f"); len(f) != 1 || f[0].Error == "" || !strings.Contains(f[0].Text, "--- FAIL") {
		t.Errorf("failed script = %+v, want its output kept and its error said", f)
	}

	bad := Set{Name: "bad", Cmds: []Cmd{{Key: "x", Args: []string{"bad"}}}}
	if _, err := Measure(context.Background(), bad, Options{Bin: bin}); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Errorf("Measure of a non-JSON output: err = %v", err)
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"grouped", grouped(31268.4), "31,268"},
		{"grouped small", grouped(498), "498"},
		{"grouped million", grouped(1234567), "1,234,567"},
		{"stat one", statOf([]float64{1.5}).format(times), "1.50x"},
		{"stat range", statOf([]float64{2, 1, 3}).format(times), "2.00x [1.00-3.00x]"},
		{"signed", signedPercent(0.0138), "+1%"},
		{"zero", signedPercent(-0.001), "0%"},
		{"micros ms", micros(2000), "2 ms"},
		{"micros us", micros(34.94), "34.9 us"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

// TestParsers: go test -v and -bench output as the fault suite and the
// benchmarks print it, a parallel test's logs after its === CONT line.
func TestParsers(t *testing.T) {
	out := `=== RUN   TestA
=== PAUSE TestA
=== RUN   TestB
    harness_test.go:60: fault schedule seed 1 (replay with -faults.seed 1)
    harness_test.go:334: sigkill: 20000 completed | retries=21
--- PASS: TestB (10.20s)
=== CONT  TestA
    abuse_test.go:312: forged 3 give-ups before the job and 3 during it
    harness_test.go:105: worker output (last 4 KiB):
--- PASS: TestA (1.50s)
    stray_test.go:1: output of no test
=== RUN   TestC
--- PASS: TestC (0.01s)
BenchmarkDispatch/dispatch=request/batch=10-2   2000   356083 ns/op   4700 B/op   47 allocs/op
PASS
`
	logs := testLogs(out)
	if len(logs) != 2 {
		t.Fatalf("testLogs = %+v, want TestB and TestA", logs)
	}
	if logs[0].Name != "TestB" || logs[0].Time != "10.20s" || len(logs[0].Lines) != 1 || !strings.HasPrefix(logs[0].Lines[0], "sigkill: 20000") {
		t.Errorf("TestB = %+v", logs[0])
	}
	if logs[1].Name != "TestA" || len(logs[1].Lines) != 1 || !strings.HasPrefix(logs[1].Lines[0], "forged 3") {
		t.Errorf("TestA = %+v (its log follows === CONT)", logs[1])
	}
	d := &Data{Runs: []Run{{Key: "b", Text: out}}}
	bs := benchLines(d, "b")
	if len(bs) != 1 || bs[0].Name != "BenchmarkDispatch/dispatch=request/batch=10" || bs[0].Values["ns/op"] != 356083 || bs[0].Values["allocs/op"] != 47 {
		t.Errorf("benchLines = %+v", bs)
	}
}
