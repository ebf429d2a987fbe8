package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/ferrylab/ferry/internal/procattr"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/sink"
	"github.com/ferrylab/ferry/workload"
	"golang.org/x/sync/errgroup"
)

// Sharded processes mode: several coordinator processes feed one fleet,
// each over a range of the input, and this process merges their results
// in input order into one report. One coordinator does part of every
// batch on one goroutine (reading every result off its connection, the
// ordered write), so past about a core's worth of that it cannot go
// faster, whatever its cores (docs/capacity.md); several coordinators, each
// with its own connection, can.
//
// Each shard is a `ferry shard` child process: it runs the job over
// documents [First, Last) against the same broker and writes its results,
// in order, as frames to a file of its own; this process then writes the
// frames of shard 0, then shard 1, ... to the output and hashes them, so
// the digest is the one a single coordinator gives.

// shardSpec is one shard's job, written by the parent to a file the child
// reads. It is gob-encoded: gob skips the job's func fields.
type shardSpec struct {
	Job         coordinator.Config
	Input       Input
	First, Last int64  // the documents of the input this shard runs
	Results     string // the file the shard writes its result frames to
	Expect      int    // workers to wait for before the clock starts
	Name        string // the shard's connection name
}

// ShardConfig is one shard child's run: `ferry shard`.
type ShardConfig struct {
	Spec   string        // the spec file the parent wrote
	URL    string        // the broker, with the credentials in Auth
	Auth   natsconn.Auth // a coordinator's
	Stdout io.Writer     // where the shard's statistics go, as JSON
	Logger *slog.Logger
}

// RunShard runs one shard of a sharded job and writes its statistics as
// JSON to Stdout (also after an error, when there are any).
func RunShard(ctx context.Context, cfg ShardConfig) error {
	log := orDiscard(cfg.Logger)
	var spec shardSpec
	f, err := os.Open(cfg.Spec)
	if err != nil {
		return fmt.Errorf("%w: spec=%s: %v", coordinator.ErrInvalidConfig, cfg.Spec, err)
	}
	err = gob.NewDecoder(f).Decode(&spec)
	f.Close()
	if err != nil {
		return fmt.Errorf("%w: spec=%s: %v", coordinator.ErrInvalidConfig, cfg.Spec, err)
	}
	src, err := spec.Input.rangeSource(spec.First, spec.Last)
	if err != nil {
		return err
	}
	defer src.Close()
	nc, err := natsconn.Connect(cfg.URL, spec.Name, cfg.Auth, log)
	if err != nil {
		return fmt.Errorf("%w: %w", coordinator.ErrInvalidConfig, err)
	}
	defer nc.Close()
	backend, err := coordinator.NewBackend(coordinator.BackendConfig{Mode: coordinator.ModeProcesses, Job: spec.Job, Conn: nc, Expect: spec.Expect, Log: log})
	if err != nil {
		return err
	}
	out, err := createFrames(spec.Results, spec.Job.Codec, spec.Job.Limits)
	if err != nil {
		return err
	}
	st, runErr := coordinator.Run(ctx, spec.Job, src, backend, out)
	if err := out.Close(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("write results: %w", err))
	}
	if st != nil {
		if err := json.NewEncoder(orStdout(cfg.Stdout)).Encode(st); err != nil {
			return errors.Join(runErr, err)
		}
	}
	return runErr
}

// rangeSource is documents [first, last) of the input, numbered from 0.
// What comes before first is read past now, and a range that fits in
// memory is generated or read now too, before the job's clock starts (as
// Run does), so the shard's coordinator does not pay for it.
func (in Input) rangeSource(first, last int64) (corpus.Source, error) {
	if in.Path == "" {
		g := in.Gen
		g.Docs = last
		gen, err := corpus.Generated(g)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", coordinator.ErrInvalidConfig, err)
		}
		if in.fits(last - first) {
			texts := make([]string, last-first)
			for i := range texts {
				texts[i] = gen.Doc(first + int64(i)).Text
			}
			return corpus.Slice(texts), nil
		}
		return &skipSource{src: gen, first: first, last: last}, nil
	}
	src, err := in.open()
	if err != nil {
		return nil, err
	}
	s := &skipSource{src: src, first: first, last: last}
	var texts []string
	var size int
	for size < pregenMaxBytes {
		d, err := s.Next()
		if errors.Is(err, io.EOF) {
			src.Close()
			return corpus.Slice(texts), nil
		}
		if err != nil {
			src.Close()
			return nil, err
		}
		texts, size = append(texts, d.Text), size+len(d.Text)
	}
	// Too large to hold: what was read, then the rest as it comes.
	return &heldSource{held: texts, rest: s}, nil
}

// heldSource yields documents held in memory, then the rest of a source,
// numbered on.
type heldSource struct {
	held []string
	next int
	rest corpus.Source
}

func (h *heldSource) Next() (corpus.Doc, error) {
	if h.next < len(h.held) {
		h.next++
		return corpus.Doc{Index: int64(h.next - 1), Text: h.held[h.next-1]}, nil
	}
	d, err := h.rest.Next()
	d.Index = int64(h.next)
	h.next++
	return d, err
}

func (h *heldSource) Len() int64   { return h.rest.Len() }
func (h *heldSource) Close() error { return h.rest.Close() }

// skipSource yields documents [first, last) of src, numbered from 0.
type skipSource struct {
	src         corpus.Source
	first, last int64
	next        int64 // index in src of the next document
}

func (s *skipSource) Next() (corpus.Doc, error) {
	for {
		if s.next >= s.last {
			return corpus.Doc{}, io.EOF
		}
		d, err := s.src.Next()
		if err != nil {
			return d, err
		}
		s.next++
		if s.next > s.first {
			d.Index -= s.first
			return d, nil
		}
	}
}

func (s *skipSource) Len() int64   { return s.last - s.first }
func (s *skipSource) Close() error { return s.src.Close() }

// Result frames: a shard's results in order, each batch as its first
// document, its document count, and the result encoded with the job's
// codec (failed documents as the result's errors, their rows zero).

// frames writes result frames to a file: a sink.Writer.
type frames struct {
	f     *os.File
	w     *bufio.Writer
	codec proto.Codec
	res   proto.Result
	buf   []byte
}

func createFrames(path, codec string, lim proto.Limits) (*frames, error) {
	c, err := proto.NewCodec(codec, lim)
	if err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("shard results: %w", err)
	}
	return &frames{f: f, w: bufio.NewWriterSize(f, 1<<20), codec: c}, nil
}

func (fr *frames) Write(first int64, out *workload.Output, failed []bool) error {
	fr.res.Out, fr.res.Errs = *out, fr.res.Errs[:0]
	for i, f := range failed {
		if f {
			fr.res.Errs = append(fr.res.Errs, workload.DocError{Doc: uint32(i)})
		}
	}
	var err error
	if fr.buf, err = fr.codec.AppendResult(fr.buf[:0], &fr.res); err != nil {
		return err
	}
	var head [16]byte
	binary.LittleEndian.PutUint64(head[0:], uint64(first))
	binary.LittleEndian.PutUint32(head[8:], uint32(len(failed)))
	binary.LittleEndian.PutUint32(head[12:], uint32(len(fr.buf)))
	if _, err := fr.w.Write(head[:]); err != nil {
		return err
	}
	_, err = fr.w.Write(fr.buf)
	return err
}

func (fr *frames) Close() error {
	return errors.Join(fr.w.Flush(), fr.f.Close())
}

// replayFrames writes the frames of path to out, their documents moved by
// offset, and hashes them into d.
func replayFrames(path string, offset int64, codec proto.Codec, out sink.Writer, d *coordinator.Digest) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var head [16]byte
	var buf []byte
	var res proto.Result
	var failed []bool
	for {
		if _, err := io.ReadFull(r, head[:]); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		first := int64(binary.LittleEndian.Uint64(head[0:]))
		n, size := int(binary.LittleEndian.Uint32(head[8:])), int(binary.LittleEndian.Uint32(head[12:]))
		buf = append(buf[:0], make([]byte, size)...)
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		res.Out.Reset()
		res.Errs = res.Errs[:0]
		if err := codec.DecodeResult(buf, &res); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		failed = append(failed[:0], make([]bool, n)...)
		for _, e := range res.Errs {
			if int(e.Doc) < n {
				failed[e.Doc] = true
			}
		}
		if err := out.Write(offset+first, &res.Out, failed); err != nil {
			return fmt.Errorf("write results: %w", err)
		}
		d.Add(&res.Out, failed)
	}
}

// shards is a sharded run: n coordinator processes of exe over input,
// shard i connecting with env(i) (a broker's URL, a coordinator's
// credentials).
type shards struct {
	n      int
	docs   int64                // the input's documents; 0 = count them
	exe    string               // "" = this executable
	env    func(i int) []string // how shard i connects: ChildEnv
	job    coordinator.Config
	input  Input
	expect int
	log    *slog.Logger
}

// run runs the shards, waits for all, writes their results in input order
// to out and returns one job's statistics. Wall is the longest shard's;
// stage medians are the shards' medians weighted by batches and p99 the
// largest shard p99 (quantiles do not merge exactly); Digest is the whole
// job's, as one coordinator would have it.
func (s shards) run(ctx context.Context, out sink.Writer) (*coordinator.Stats, error) {
	total, err := s.total()
	if err != nil {
		return nil, err
	}
	if total < int64(s.n) {
		return nil, fmt.Errorf("%w: coordinators=%d: the input has %d documents", coordinator.ErrInvalidConfig, s.n, total)
	}
	dir, err := os.MkdirTemp("", "ferry-shards-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	exe := s.exe
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	job := s.job
	job.OnProgress, job.Observe = nil, nil
	specs := make([]shardSpec, s.n)
	for i := range specs {
		specs[i] = shardSpec{Job: job, Input: s.input, First: total * int64(i) / int64(s.n), Last: total * int64(i+1) / int64(s.n),
			Results: filepath.Join(dir, fmt.Sprintf("results-%d", i)), Expect: s.expect, Name: fmt.Sprintf("ferry-coordinator-shard-%d", i)}
	}
	stats := make([]*coordinator.Stats, s.n)
	g, gctx := errgroup.WithContext(ctx)
	for i := range specs {
		g.Go(func() error {
			st, err := s.runOne(gctx, exe, filepath.Join(dir, fmt.Sprintf("spec-%d", i)), specs[i], s.env(i))
			stats[i] = st
			if err != nil {
				return fmt.Errorf("coordinator shard %d: %w", i, err)
			}
			return nil
		})
	}
	runErr := g.Wait()
	st := mergeShardStats(specs, stats)
	d := coordinator.NewDigest()
	codec, err := proto.NewCodec(job.WithDefaults().Codec, job.WithDefaults().Limits)
	if err != nil {
		return st, err
	}
	for i, sp := range specs {
		if stats[i] == nil || stats[i].Prefix < sp.Last-sp.First {
			break // results past a shard that did not finish would leave a hole
		}
		if err := replayFrames(sp.Results, sp.First, codec, out, d); err != nil {
			return st, errors.Join(runErr, err)
		}
	}
	st.Digest = d.Sum()
	return st, runErr
}

// total is the input's document count, read through once when unknown.
func (s shards) total() (int64, error) {
	if s.docs > 0 {
		return s.docs, nil
	}
	if n := s.input.total(); n >= 0 {
		return n, nil
	}
	src, err := s.input.open()
	if err != nil {
		return 0, err
	}
	defer src.Close()
	var n int64
	for {
		if _, err := src.Next(); errors.Is(err, io.EOF) {
			return n, nil
		} else if err != nil {
			return n, fmt.Errorf("read input: %w", err)
		}
		n++
	}
}

// runOne runs one shard's child process to its end and reads its stats.
func (s shards) runOne(ctx context.Context, exe, specPath string, spec shardSpec, env []string) (*coordinator.Stats, error) {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(spec); err != nil {
		return nil, err
	}
	if err := os.WriteFile(specPath, b.Bytes(), 0o600); err != nil {
		return nil, err
	}
	var stdout bytes.Buffer
	// A shard's failure comes back as its error and statistics; its log
	// says only errors, or every shard would warn about the same events.
	cmd := exec.CommandContext(ctx, exe, "shard", specPath, "--log-level", "error", "--parent-pid", strconv.Itoa(os.Getpid()))
	cmd.Env = append(os.Environ(), env...) // the URL and credentials stay out of argv (ps)
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	cmd.SysProcAttr = procattr.Child()
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) } // let it stop gracefully
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	var st coordinator.Stats
	if jerr := json.Unmarshal(stdout.Bytes(), &st); jerr != nil {
		return nil, errors.Join(err, fmt.Errorf("read its statistics: %w", jerr))
	}
	return &st, err
}

// mergeShardStats is one job's statistics from its shards'.
func mergeShardStats(specs []shardSpec, parts []*coordinator.Stats) *coordinator.Stats {
	st := &coordinator.Stats{Mode: coordinator.ModeProcesses, Busy: map[string]float64{}}
	var p50 [coordinator.NumStages]float64
	complete := true
	for i, p := range parts {
		if p == nil {
			complete = false
			continue
		}
		st.Wall = max(st.Wall, p.Wall)
		st.Workers = max(st.Workers, p.Workers)
		st.Docs += p.Docs
		st.TextBytes += p.TextBytes
		st.Batches += p.Batches
		st.BytesOut += p.BytesOut
		st.BytesIn += p.BytesIn
		st.Retries += p.Retries
		st.Requeues += p.Requeues
		st.Splits += p.Splits
		st.Dupes += p.Dupes
		for _, f := range p.Failed {
			f.Index += specs[i].First
			st.Failed = append(st.Failed, f)
		}
		for _, s := range p.BatchSizes {
			s.First += specs[i].First
			st.BatchSizes = append(st.BatchSizes, s)
		}
		st.AutoBatch = st.AutoBatch || p.AutoBatch
		if complete {
			st.Prefix = specs[i].First + p.Prefix
			complete = p.Prefix >= specs[i].Last-specs[i].First
		}
		for k := range coordinator.NumStages {
			q, m := p.Stages[k], &st.Stages[k]
			if q.N == 0 {
				continue
			}
			m.Mean = time.Duration((float64(m.Mean)*float64(m.N) + float64(q.Mean)*float64(q.N)) / float64(m.N+q.N))
			p50[k] += float64(q.P50) * float64(q.N)
			m.N += q.N
			m.P99 = max(m.P99, q.P99)
		}
	}
	for k := range coordinator.NumStages {
		if n := st.Stages[k].N; n > 0 {
			st.Stages[k].P50 = time.Duration(p50[k] / float64(n))
		}
	}
	for _, p := range parts { // busy time, over the merged wall
		if p == nil || st.Wall <= 0 {
			continue
		}
		for w, b := range p.Busy {
			st.Busy[w] += b * p.Wall.Seconds() / st.Wall.Seconds()
		}
	}
	return st
}

// runShards is runMode for processes mode sharded over Coordinators
// processes: the shards read the input themselves; only the last mode
// writes Out, as in runMode.
func (e *runEnv) runShards(ctx context.Context, writeOut bool) (*coordinator.Stats, error) {
	var out sink.Writer = sink.Discard{}
	var file *sink.File
	if writeOut && e.cfg.Out != "" {
		var err error
		if file, err = sink.Create(e.cfg.Out); err != nil {
			return nil, err
		}
		out = file
	}
	s := shards{n: e.cfg.Coordinators, exe: e.cfg.Fleet.Exe, env: e.coordEnv, job: e.cfg.Job, input: e.cfg.Input, expect: e.cfg.ExpectWorkers, log: e.log}
	st, err := s.run(ctx, out)
	if err = finishOut(file, err); err == nil {
		err = out.Close()
	}
	if st != nil {
		e.log.Info("mode done", "mode", coordinator.ModeProcesses, "coordinators", s.n, "docs", st.Docs, "wall", st.Wall.Round(time.Millisecond), "docs_per_s", int(st.DocsPerSec()))
	}
	return st, err
}
