package figures

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// The fault suite (docs/faults.md): every test's own result line, the cost
// of durability, and a whole job by request and by JetStream.
var faultsSet = Set{Name: "faults", Cmds: []Cmd{
	{Key: "suite", Go: true, Args: []string{"test", "-count=1", "-v", "./faulttest"}},
	{Key: "long", Go: true, Args: []string{"test", "-count=1", "-v", "-run", "TestSIGKILL|TestPoisonDocumentKills|TestBroker", "./faulttest", "-faults.long"},
		Quick: []string{"test", "-count=1", "-v", "-run", "TestSIGKILL|TestPoisonDocumentKills|TestBroker", "./faulttest"}},
	{Key: "bench", Go: true, Args: []string{"test", "-run", "^$", "-bench", "Dispatch", "-benchtime", "2000x", "-count", "3", "./faulttest"},
		Quick: []string{"test", "-run", "^$", "-bench", "Dispatch", "-benchtime", "200x", "-count", "1", "./faulttest"}},
	{Key: "jetstream-text", Text: true, Args: jetstreamArgs("40000"), Quick: jetstreamArgs("8000")},
}}

func jetstreamArgs(docs string) []string {
	return []string{"run", "-q", "--modes", "serial,processes", "--dispatch", "request,jetstream", "--workers", "2",
		"--workload", "spin", "--spin-cost", "50us", "--docs", docs, "--batch-size", "50"}
}

// testLog is one test of a go test -v run: its verdict, time and what it
// logged.
type testLog struct {
	Name, Verdict, Time string
	Lines               []string
}

var (
	runLine    = regexp.MustCompile(`^=== (?:RUN|CONT|NAME)\s+(\S+)`)
	doneLine   = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+) \(([\d.]+s)\)`)
	loggedLine = regexp.MustCompile(`^\s+\S+_test\.go:\d+: (.*)$`)
)

// testLogs reads go test -v output: each test's single-line log messages,
// in the order the tests finished.
func testLogs(out string) []testLog {
	byName := map[string]*testLog{}
	var order []string
	current := ""
	for _, line := range strings.Split(out, "\n") {
		if m := runLine.FindStringSubmatch(line); m != nil {
			current = m[1]
			continue
		}
		if m := doneLine.FindStringSubmatch(line); m != nil {
			t := byName[m[2]]
			if t == nil {
				t = &testLog{Name: m[2]}
				byName[m[2]] = t
			}
			t.Verdict, t.Time = m[1], m[3]
			order = append(order, m[2])
			current = "" // until the next === RUN, CONT or NAME says whose output follows
			continue
		}
		if m := loggedLine.FindStringSubmatch(line); m != nil && current != "" {
			if strings.HasPrefix(m[1], "fault schedule seed") || strings.HasSuffix(m[1], ":") {
				continue // the seed is in the command; multi-line dumps are not figures
			}
			t := byName[current]
			if t == nil {
				t = &testLog{Name: current}
				byName[current] = t
			}
			t.Lines = append(t.Lines, m[1])
		}
	}
	var out2 []testLog
	for _, n := range order {
		if t := byName[n]; len(t.Lines) > 0 {
			out2 = append(out2, *t)
		}
	}
	return out2
}

// renderFaultsSuite is every fault test's result line.
func renderFaultsSuite(key string) func(*Data) (string, error) {
	return func(d *Data) (string, error) {
		rs := d.Of(key)
		if len(rs) == 0 {
			return "", fmt.Errorf("no %s run", key)
		}
		logs := testLogs(rs[0].Text)
		if len(logs) == 0 {
			return "", fmt.Errorf("%s: no test logged a result", key)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "`%s`, each test's own result line:\n\n", rs[0].Command)
		if rs[0].Error != "" {
			fmt.Fprintf(&b, "**The run failed** (%s): see the failed tests below and `docs/figures/%s.json`.\n\n", rs[0].Error, d.Set)
		}
		b.WriteString("| test | verdict | result |\n|---|---|---|\n")
		for _, t := range logs {
			fmt.Fprintf(&b, "| `%s` | %s (%s) | %s |\n", t.Name, strings.ToLower(t.Verdict), t.Time,
				strings.ReplaceAll(strings.Join(t.Lines, "; "), "|", "\\|"))
		}
		return b.String(), nil
	}
}

// renderFaultsBench is request/reply against JetStream dispatch, medians
// over the benchmark's -count.
func renderFaultsBench(d *Data) (string, error) {
	lines := benchLines(d, "bench")
	if len(lines) == 0 {
		return "", fmt.Errorf("no Dispatch benchmark lines")
	}
	type key struct{ batch, dispatch string }
	vals := map[key][]float64{}
	allocs := map[key][]float64{}
	bytes := map[key][]float64{}
	var batches []string
	for _, l := range lines {
		var k key
		for _, part := range strings.Split(l.Name, "/") {
			if v, ok := strings.CutPrefix(part, "batch="); ok {
				k.batch = v
			}
			if v, ok := strings.CutPrefix(part, "dispatch="); ok {
				k.dispatch = v
			}
		}
		if k.batch == "" || k.dispatch == "" {
			continue
		}
		if len(vals[key{k.batch, "request"}])+len(vals[key{k.batch, "jetstream"}]) == 0 {
			batches = append(batches, k.batch)
		}
		vals[k] = append(vals[k], l.Values["ns/op"])
		allocs[k] = append(allocs[k], l.Values["allocs/op"])
		bytes[k] = append(bytes[k], l.Values["B/op"])
	}
	if len(batches) == 0 {
		return "", fmt.Errorf("no batch=/dispatch= benchmarks in %q", lines[0].Name)
	}
	sort.Slice(batches, func(i, j int) bool {
		return len(batches[i]) < len(batches[j]) || len(batches[i]) == len(batches[j]) && batches[i] < batches[j]
	})
	var b strings.Builder
	fmt.Fprintf(&b, "`%s`, medians:\n\n| batch | request ns/op | jetstream ns/op | jetstream / request | request B/op, allocs | jetstream B/op, allocs |\n|---|--:|--:|--:|--:|--:|\n", d.Of("bench")[0].Command)
	for _, n := range batches {
		r, j := statOf(vals[key{n, "request"}]).med, statOf(vals[key{n, "jetstream"}]).med
		fmt.Fprintf(&b, "| %s docs | %s | %s | %s | %s, %s | %s, %s |\n", n, grouped(r), grouped(j), times(j/r),
			grouped(statOf(bytes[key{n, "request"}]).med), grouped(statOf(allocs[key{n, "request"}]).med),
			grouped(statOf(bytes[key{n, "jetstream"}]).med), grouped(statOf(allocs[key{n, "jetstream"}]).med))
	}
	return b.String(), nil
}
