//go:build unix

// Package compose tests docker-compose.yml and docker-compose.cluster.yml
// on a real Docker engine: the image is built from a fresh static binary,
// each test brings up its own compose project, runs jobs through the
// coordinator container and breaks things mid-job (kills a worker
// container, stops a NATS node). Without an engine the tests skip.
package compose

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrylab/ferry/internal/poll"
	"github.com/ferrylab/ferry/report"
)

var (
	root      string   // the repository, where the compose files are
	composeCL []string // docker compose, or docker-compose
	image     string   // the image built for this test run
	ferryBin  string   // the binary inside it, for reference runs on the host
	skipWhy   string   // why the tests skip, when they do
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		wd, err := os.Getwd()
		if err != nil {
			panic(err)
		}
		root = filepath.Join(wd, "..", "..")
		if skipWhy = findEngine(); skipWhy != "" {
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "ferry-compose-")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		if err := buildImage(dir); err != nil {
			fmt.Fprintln(os.Stderr, "compose tests: build image:", err)
			return 1
		}
		defer exec.Command("docker", "rmi", "-f", image).Run()
		return m.Run()
	}()
	os.Exit(code)
}

// findEngine returns why the tests cannot run here, or "" when they can.
func findEngine() string {
	if testing.Short() {
		return "-short"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		return fmt.Sprintf("no Docker engine answers (docker info: %v: %s)", err, firstLine(out))
	}
	for _, c := range [][]string{{"docker", "compose"}, {"docker-compose"}} {
		args := append(c[1:], "version")
		if exec.CommandContext(ctx, c[0], args...).Run() == nil {
			composeCL = c
			return ""
		}
	}
	return "a Docker engine answers but neither `docker compose` nor `docker-compose` is installed"
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// buildImage builds the static binary and the FROM-scratch image from a
// context holding only what the Dockerfile copies, tagged for this run.
func buildImage(dir string) error {
	ferryBin = filepath.Join(dir, "bin", "ferry")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", ferryBin, "./cmd/ferry")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	for _, f := range []string{"Dockerfile", ".dockerignore", "configs/ferry.yaml"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return err
		}
	}
	image = "ferry:test-" + randHex()
	if out, err := exec.Command("docker", "build", "-q", "-t", image, dir).CombinedOutput(); err != nil {
		return fmt.Errorf("docker build: %v\n%s", err, out)
	}
	return nil
}

func randHex() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// project is one compose project, torn down (containers, networks,
// volumes) when the test ends, whatever happened.
type project struct {
	t    *testing.T
	name string
	file string
	env  []string // the NATS passwords the compose files require
}

func newProject(t *testing.T, file string) *project {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	p := &project{t: t, name: "ferrytest" + randHex(), file: file, env: []string{
		"FERRY_IMAGE=" + image,
		"FERRY_WORKER_PASSWORD=" + randHex() + randHex(),
		"FERRY_COORDINATOR_PASSWORD=" + randHex() + randHex(),
		"FERRY_CLUSTER_PASSWORD=" + randHex() + randHex(), // docker-compose.cluster.yml's routes
	}}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := p.command(context.Background(), "logs", "--no-color", "--tail", "30").CombinedOutput()
			t.Logf("logs of %s:\n%s", p.name, out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if out, err := p.command(ctx, "down", "-v", "--remove-orphans", "-t", "5").CombinedOutput(); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	return p
}

func (p *project) command(ctx context.Context, args ...string) *exec.Cmd {
	all := append(append(composeCL[1:], "-p", p.name, "-f", filepath.Join(root, p.file)), args...)
	cmd := exec.CommandContext(ctx, composeCL[0], all...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), p.env...)
	return cmd
}

// compose runs a compose command to completion and returns its stdout.
func (p *project) compose(args ...string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := p.command(ctx, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		p.t.Fatalf("compose %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// containers lists the container IDs of a service.
func (p *project) containers(service string) []string {
	p.t.Helper()
	return strings.Fields(p.compose("ps", "-q", service))
}

// job is a coordinator run in the background.
type job struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	done   chan struct{}
	err    error

	mu          sync.Mutex
	server      string // the NATS server the coordinator connected to
	disconnects int    // times the coordinator lost its NATS connection
}

// startJob runs `compose run --rm coordinator args...` in the background.
func (p *project) startJob(args ...string) *job {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	j := &job{done: make(chan struct{})}
	j.cmd = p.command(ctx, append([]string{"run", "--rm", "-T", "coordinator"}, args...)...)
	j.cmd.Stdout = &j.stdout
	stderr, err := j.cmd.StderrPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	if err := j.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	var logs bytes.Buffer
	go func() { // owned by the job: ends when the command's stderr closes
		defer close(j.done)
		defer cancel()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.Write(append(sc.Bytes(), '\n'))
			var l struct{ Msg, Server string }
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				j.mu.Lock()
				switch l.Msg {
				case "nats connected":
					j.server = l.Server
				case "nats disconnected":
					j.disconnects++
				}
				j.mu.Unlock()
			}
		}
		j.err = j.cmd.Wait()
		if j.err != nil {
			j.err = fmt.Errorf("%w\n%s", j.err, logs.String())
		}
	}()
	p.t.Cleanup(func() { j.cmd.Process.Kill(); <-j.done })
	return j
}

// mustBeRunning fails the test, showing how the job ended, if it has.
func (j *job) mustBeRunning(t *testing.T) {
	t.Helper()
	if !j.running() {
		t.Fatalf("the job ended before anything was broken; nothing was tested (err %v)\nstdout: %s", j.err, j.stdout.String())
	}
}

func (j *job) running() bool {
	select {
	case <-j.done:
		return false
	default:
		return true
	}
}

// report waits for the job and parses its JSON report.
func (j *job) report(t *testing.T) *report.Report {
	t.Helper()
	<-j.done
	if j.err != nil {
		t.Fatalf("coordinator: %v\nstdout: %s", j.err, j.stdout.String())
	}
	var r report.Report
	if err := json.Unmarshal(j.stdout.Bytes(), &r); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, j.stdout.String())
	}
	return &r
}

// metric reads one sample from a container's /metrics (published on a
// random loopback port); -1 when it cannot be read.
func metric(t *testing.T, container, port, sample string) float64 {
	t.Helper()
	out, err := exec.Command("docker", "port", container, port).Output()
	if err != nil {
		return -1
	}
	addr := firstLine(out)
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// The long job: spin burns a set CPU time per document (about 12 CPU
// seconds in all, so several seconds on two cores), and its output depends
// only on the text, so a serial run on the host with a tiny cost gives the
// reference digest. spin calibrates its rate at start, and on a loaded
// machine it may calibrate low and run several times faster: the tests
// therefore strike after a worker's 5th batch of 800, not at a set time.
const longDocs = 40000

var longJob = []string{"--workload", "spin", "--spin-cost", "300us", "--docs", strconv.Itoa(longDocs), "--batch-size", "50", "--format", "json"}

func referenceDigest(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(ferryBin, "run", "-q", "--modes", "serial", "--workload", "spin", "--spin-cost", "1us",
		"--docs", strconv.Itoa(longDocs), "--format", "json").Output()
	if err != nil {
		t.Fatalf("reference run: %v", err)
	}
	var r report.Report
	if err := json.Unmarshal(out, &r); err != nil || len(r.Modes) != 1 {
		t.Fatalf("reference report: %v\n%s", err, out)
	}
	return r.Modes[0].Digest
}

// checkComplete asserts a processes-mode report lost and duplicated nothing.
func checkComplete(t *testing.T, m report.Mode, docs int64, digest string) {
	t.Helper()
	if m.Error != "" {
		t.Errorf("%s: error %q", m.Mode, m.Error)
	}
	if m.Docs != docs {
		t.Errorf("%s: docs = %d, want %d (lost %d)", m.Mode, m.Docs, docs, docs-m.Docs)
	}
	if m.Failed != 0 {
		t.Errorf("%s: failed_docs = %d, want 0", m.Mode, m.Failed)
	}
	if m.Digest != digest {
		t.Errorf("%s: digest %s, want the serial run's %s", m.Mode, m.Digest, digest)
	}
}

func TestComposeFleet(t *testing.T) {
	p := newProject(t, "docker-compose.yml")
	p.compose("up", "-d", "--scale", "worker=3", "broker", "worker")
	workers := p.containers("worker")
	if len(workers) != 3 {
		t.Fatalf("worker containers = %d, want 3", len(workers))
	}

	t.Run("job matches a serial run", func(t *testing.T) {
		const docs = 20000
		r := p.startJob("--expect-workers", "3", "--modes", "serial,processes", "--docs", strconv.Itoa(docs), "--format", "json").report(t)
		if len(r.Modes) != 2 {
			t.Fatalf("modes = %d, want 2", len(r.Modes))
		}
		serial, procs := r.Modes[0], r.Modes[1]
		checkComplete(t, serial, docs, serial.Digest)
		checkComplete(t, procs, docs, serial.Digest)
		if !r.IdenticalResults {
			t.Errorf("identical_results = false")
		}
		if procs.Workers != 3 {
			t.Errorf("processes workers = %d, want 3", procs.Workers)
		}
		// The broker requires auth; the coordinator's echo logs in with the
		// coordinator's own credentials, so the floor is measured here too.
		if len(r.Floor) == 0 || r.Floor[0].RawP50us <= 0 || r.Floor[0].FerryP50 <= 0 {
			t.Errorf("transport floor %+v, want a raw echo and a ferry round trip from the compose coordinator", r.Floor)
		}
		if procs.BusyMean > 1.05 {
			t.Errorf("busy_mean = %.2f > 1: the workers' busy time was merged under one name", procs.BusyMean)
		}
		// Every container served part of the job, and the workers' own
		// counters add up to at least the job.
		var sum float64
		for _, c := range workers {
			n := metric(t, c, "9100", `ferry_worker_docs_total{outcome="ok"}`)
			if n <= 0 {
				t.Errorf("worker %.12s computed %v documents, want > 0", c, n)
			}
			sum += n
		}
		if sum < docs {
			t.Errorf("workers' ferry_worker_docs_total sums to %v, want >= %d", sum, docs)
		}
	})

	t.Run("broker refuses anonymous clients", func(t *testing.T) {
		// The same check the healthcheck makes, without the credentials.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := p.command(ctx, "run", "--rm", "-T", "--entrypoint", "/ferry",
			"-e", "FERRY_NATS_USER=", "-e", "FERRY_NATS_PASSWORD=",
			"coordinator", "health", "--nats-url", "nats://broker:4222").CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("anonymous health check: %v, want exit 1\n%s", err, out)
		}
		if !strings.Contains(strings.ToLower(string(out)), "authorization") {
			t.Errorf("output does not say authorization failed:\n%s", out)
		}
	})

	t.Run("crashed worker process is restarted and rejoins", func(t *testing.T) {
		// A worker process dying on its own (not a docker stop/kill, which
		// no restart policy undoes) is restarted by restart: unless-stopped.
		c := workers[0]
		out, err := exec.Command("docker", "inspect", "-f", "{{.State.Pid}}", c).Output()
		if err != nil {
			t.Fatalf("docker inspect: %v", err)
		}
		pid, err := strconv.Atoi(firstLine(out))
		if err != nil || pid <= 0 {
			t.Fatalf("worker pid %q: %v", out, err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Skipf("cannot signal the container's process from here (%v): the engine is not local or we are not root", err)
		}
		poll.WaitFor(t, 60*time.Second, "the worker to be restarted and healthy", func() bool {
			out, err := exec.Command("docker", "inspect", "-f", "{{.RestartCount}} {{.State.Health.Status}}", c).Output()
			f := strings.Fields(string(out))
			return err == nil && len(f) == 2 && f[0] != "0" && f[1] == "healthy"
		})
		r := p.startJob("--expect-workers", "3", "--docs", "2000", "--format", "json").report(t)
		if m := r.Modes[0]; m.Workers != 3 || m.Docs != 2000 || m.Failed != 0 {
			t.Errorf("after the restart: workers %d, docs %d, failed %d; want 3, 2000, 0", m.Workers, m.Docs, m.Failed)
		}
	})

	t.Run("killed worker container loses nothing", func(t *testing.T) {
		want := referenceDigest(t)
		victim := workers[len(workers)-1]
		before := metric(t, victim, "9100", `ferry_worker_batches_total{outcome="ok"}`)
		j := p.startJob(append([]string{"--expect-workers", "3"}, longJob...)...)
		poll.WaitFor(t, 90*time.Second, "the victim to serve 5 batches of this job", func() bool {
			return metric(t, victim, "9100", `ferry_worker_batches_total{outcome="ok"}`) >= before+5 || !j.running()
		})
		j.mustBeRunning(t)
		if out, err := exec.Command("docker", "kill", victim).CombinedOutput(); err != nil {
			t.Fatalf("docker kill: %v: %s", err, out)
		}
		killedMidJob := j.running()
		r := j.report(t)
		if !killedMidJob {
			t.Fatalf("the job ended while the victim was being killed; nothing was tested")
		}
		m := r.Modes[0]
		checkComplete(t, m, longDocs, want)
		if m.Retries == 0 {
			t.Errorf("retries = 0: the killed worker's in-flight batches were never re-sent")
		}
		t.Logf("killed %.12s mid-job: docs %d, failed %d, retries %d, duplicates discarded %d, wall %.1fs",
			victim, m.Docs, m.Failed, m.Retries, m.Duplicates, m.WallS)
	})
}

func TestComposeClusterNodeLoss(t *testing.T) {
	p := newProject(t, "docker-compose.cluster.yml")
	want := referenceDigest(t)
	p.compose("up", "-d", "nats1", "nats2", "nats3", "worker-a", "worker-b", "worker-c")
	nodeWorker := map[string]string{"nats1": "worker-a", "nats2": "worker-b", "nats3": "worker-c"}
	// Container IDs first: compose commands take seconds, the job not many.
	ids := map[string]string{}
	for node, w := range nodeWorker {
		ids[node], ids[w] = p.containers(node)[0], p.containers(w)[0]
	}

	j := p.startJob(longJob...)
	var node string
	poll.WaitFor(t, 90*time.Second, "the coordinator to say which node it is on", func() bool {
		j.mu.Lock()
		defer j.mu.Unlock()
		node = j.server
		return node != "" || !j.running()
	})
	if nodeWorker[node] == "" {
		t.Fatalf("coordinator connected to %q, not one of nats1..3", node)
	}
	// Stop the node that both the coordinator and one worker are on, once
	// that worker is busy with this job: the hardest single node to lose.
	victim, node1 := ids[nodeWorker[node]], ids[node]
	poll.WaitFor(t, 90*time.Second, node+"'s worker to serve 5 batches", func() bool {
		return metric(t, victim, "9100", `ferry_worker_batches_total{outcome="ok"}`) >= 5 || !j.running()
	})
	j.mustBeRunning(t)
	if out, err := exec.Command("docker", "stop", "-t", "5", node1).CombinedOutput(); err != nil {
		t.Fatalf("docker stop %s: %v: %s", node, err, out)
	}
	r := j.report(t)
	j.mu.Lock()
	cut := j.disconnects
	j.mu.Unlock()
	if cut == 0 {
		t.Fatalf("the coordinator never lost its connection to %s: the job ended before the node stopped", node)
	}
	m := r.Modes[0]
	checkComplete(t, m, longDocs, want)
	if m.Workers != 3 {
		t.Errorf("workers = %d, want 3", m.Workers)
	}
	t.Logf("stopped %s mid-job: docs %d, failed %d, retries %d, duplicates discarded %d, wall %.1fs",
		node, m.Docs, m.Failed, m.Retries, m.Duplicates, m.WallS)
	if errors.Is(j.err, context.DeadlineExceeded) {
		t.Errorf("coordinator timed out")
	}
}
