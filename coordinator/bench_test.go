package coordinator_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylab/ferry/internal/spawn"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/internal/childtest"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/internal/poison"
	"github.com/ferrylab/ferry/sink"
	"github.com/ferrylab/ferry/workload"
	"github.com/nats-io/nats.go"
)

func TestMain(m *testing.M) {
	if err := poison.Register(); err != nil { // the poison tests' workload, in workers too
		panic(err)
	}
	childtest.Main(m, nil)
}

func genDocs(tb testing.TB, n int64) []string {
	tb.Helper()
	g, err := corpus.Generated(corpus.GenConfig{Docs: n})
	if err != nil {
		tb.Fatal(err)
	}
	docs := make([]string, 0, n)
	for {
		d, err := g.Next()
		if err == io.EOF {
			return docs
		}
		if err != nil {
			tb.Fatal(err)
		}
		docs = append(docs, d.Text)
	}
}

// fleet is a broker with worker child processes and a coordinator connection.
type fleet struct {
	nc      *nats.Conn
	workers int
	pool    *spawn.Pool
}

func startFleet(tb testing.TB, workers int) *fleet {
	tb.Helper()
	b := natstest.NewBroker(tb, broker.Options{})
	pool := childtest.Start(tb, childtest.RoleWorker, b.URL(), workers)
	return &fleet{nc: natstest.Connect(tb, b.URL()), workers: workers, pool: pool}
}

// job runs one job over docs on mode and returns its stats. The documents
// were generated before the clock starts, so a benchmark measures the
// backends, not the corpus generator.
func (f *fleet) job(tb testing.TB, mode string, cfg coordinator.Config, docs []string) *coordinator.Stats {
	tb.Helper()
	return f.run(tb, mode, cfg, corpus.Slice(docs))
}

// run runs one job over src on mode and returns its stats.
func (f *fleet) run(tb testing.TB, mode string, cfg coordinator.Config, src corpus.Source) *coordinator.Stats {
	tb.Helper()
	backend, err := coordinator.NewBackend(coordinator.BackendConfig{Mode: mode, Job: cfg, Conn: f.nc, Expect: f.workers})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st, err := coordinator.Run(ctx, cfg, src, backend, sink.Discard{})
	if err != nil {
		tb.Fatalf("%s: %v", mode, err)
	}
	return st
}

// BenchmarkModes runs an embed job of 4,000 documents per iteration on
// goroutines and on worker processes (real child processes), back to back
// in alternating order, for several batch sizes. It reports:
//
//   - docs/s and goroutines-docs/s: each mode's throughput over all iterations;
//   - ratio: the median over iterations of processes docs/s over goroutines
//     docs/s, measured back to back, so the pair sees the same load;
//   - cpu-ratio: goroutines CPU time per document over processes CPU time
//     per document (this process, which embeds the broker, plus the
//     workers). On a shared machine a mode with more runnable threads gets a
//     bigger share of the cores, which flatters processes in wall time;
//     CPU per document does not depend on that share.
//
// source=memory replays documents generated beforehand; source=generator
// generates them during the job, as `ferry run` does, on the coordinator.
//
//	go test -run '^$' -bench BenchmarkModes -benchtime 10x ./coordinator/
func BenchmarkModes(b *testing.B) {
	const workers = 2
	docs := genDocs(b, 4000)
	f := startFleet(b, workers)
	for _, bc := range []struct {
		batch  int
		source string
	}{{10, "memory"}, {100, "memory"}, {100, "generator"}, {1000, "memory"}} {
		cfg := coordinator.Config{Workload: "embed", BatchSize: bc.batch, Workers: workers}
		f.job(b, coordinator.ModeProcesses, cfg, docs) // warm: workers attached, workloads built
		src := func() corpus.Source {
			if bc.source == "generator" {
				return generated(b, int64(len(docs)))
			}
			return corpus.Slice(docs)
		}
		b.Run(fmt.Sprintf("mode=processes/batch=%d/source=%s", bc.batch, bc.source), func(b *testing.B) {
			var wall, cpu [2]time.Duration // goroutines, processes
			ratios := make([]float64, 0, b.N)
			for i := range b.N {
				var w [2]time.Duration
				for k, mode := range alternate(i, coordinator.ModeGoroutines, coordinator.ModeProcesses) {
					m := k ^ (i & 1)
					c0 := cpuSelf(b) + cpuChildren(b, f.pool)
					w[m] = f.run(b, mode, cfg, src()).Wall
					cpu[m] += cpuSelf(b) + cpuChildren(b, f.pool) - c0
					wall[m] += w[m]
				}
				ratios = append(ratios, w[0].Seconds()/w[1].Seconds())
			}
			n := float64(b.N * len(docs))
			b.ReportMetric(n/wall[1].Seconds(), "docs/s")
			b.ReportMetric(n/wall[0].Seconds(), "goroutines-docs/s")
			b.ReportMetric(median(ratios), "ratio")
			b.ReportMetric(cpu[0].Seconds()/cpu[1].Seconds(), "cpu-ratio")
		})
	}
}

// generated is the generated corpus of n documents.
func generated(tb testing.TB, n int64) corpus.Source {
	g, err := corpus.Generated(corpus.GenConfig{Docs: n})
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

// alternate returns a and b, swapped on odd i, so slow drift on a shared
// machine hits both modes alike.
func alternate(i int, a, b string) []string {
	if i&1 == 1 {
		return []string{b, a}
	}
	return []string{a, b}
}

// BenchmarkDispatch measures how many batches per second the processes
// backend moves when the work is empty: one 16-byte document per batch, the
// noop workload, 2 worker processes, for several in-flight depths.
//
//	go test -run '^$' -bench BenchmarkDispatch -benchtime 5x ./coordinator/
func BenchmarkDispatch(b *testing.B) {
	const workers, batches = 2, 20000
	docs := make([]string, batches)
	for i := range docs {
		docs[i] = fmt.Sprintf("document %7d", i)
	}
	f := startFleet(b, workers)
	for _, inflight := range []int{1, 4, 16, 64} {
		cfg := coordinator.Config{Workload: "noop", BatchSize: 1, Workers: workers, InFlight: inflight,
			Params: workload.Params{OutBytes: 16}}
		f.job(b, coordinator.ModeProcesses, cfg, docs[:1000])
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			var wall time.Duration
			self0, workers0 := cpuSelf(b), cpuChildren(b, f.pool)
			for range b.N {
				wall += f.job(b, coordinator.ModeProcesses, cfg, docs).Wall
			}
			n := float64(b.N * batches)
			b.ReportMetric(n/wall.Seconds(), "batches/s")
			b.ReportMetric(float64((cpuSelf(b)-self0).Microseconds())/n, "coord-cpu-us/batch")
			b.ReportMetric(float64((cpuChildren(b, f.pool)-workers0).Microseconds())/n, "worker-cpu-us/batch")
		})
	}
}

// cpuSelf is this process's CPU time (coordinator and embedded broker).
func cpuSelf(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuChildren is the CPU time of the pool's running children, from
// /proc/<pid>/stat (10 ms resolution, plenty over thousands of batches).
func cpuChildren(tb testing.TB, p *spawn.Pool) time.Duration {
	var sum time.Duration
	for _, pid := range p.PIDs() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			tb.Skipf("no /proc: %v", err)
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from 3 (state) on
		ut, _ := strconv.ParseInt(f[11], 10, 64)                 // field 14
		st, _ := strconv.ParseInt(f[12], 10, 64)                 // field 15
		sum += time.Duration(ut+st) * 10 * time.Millisecond      // USER_HZ is 100 on Linux
	}
	return sum
}
