// Package bridge is the exec bridge: a workload that computes each batch
// in a program written in any language, run as a long-lived child process
// that reads request frames on its stdin and writes reply frames on its
// stdout (proto's exec frames; docs/protocol.md).
//
// It is a workload like any other, so everything around it holds: a
// `ferry worker --exec CMD` stays the NATS micro service, with its limits,
// stage timings and metrics, and the coordinator's retries, deadlines and
// bisection; in-process modes run one program per lane. A Pool owns the
// programs and keeps them between batches. A program that exits, hangs
// past Config.Timeout or breaks the protocol fails the batch as a whole
// (workload.ErrBatchFailed: the worker answers with an error, the
// coordinator retries the batch and bisects it if it keeps failing) and is
// replaced for the next batch. A document the program itself rejects is
// failed alone, as the program's reply says.
//
// Serve is the other end, for a program written in Go: it serves a
// registered workload on stdin and stdout (`ferry exec-serve`).
package bridge

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/ferrylab/ferry/internal/procattr"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/workload"
)

// Name is the exec workload's registry name.
const Name = "exec"

// DefaultTimeout is how long a child may take over one batch by default.
const DefaultTimeout = time.Minute

// Config configures the exec workload. The zero value of every field is
// its default.
type Config struct {
	// Command is the program's command line, run with /bin/sh -c, so it
	// may hold arguments and quotes ('python3 worker.py --dim 256'). ""
	// = none: the workload builds, so a coordinator whose workers run the
	// program validates its job, but computing here fails.
	Command string
	// Timeout is the longest one batch may take in the program, from the
	// first byte of its request to the last of its reply, before the
	// program counts as hung and is killed; 0 = DefaultTimeout.
	Timeout time.Duration
	// MaxFrame is the largest reply frame accepted; 0 = proto.DefaultMaxFrame.
	MaxFrame int
	// Stderr receives the program's stderr; nil = this process's stderr.
	Stderr io.Writer
}

// Pool runs the programs of one Config: started on demand, one per batch
// in flight, and kept between batches, jobs and params (a program reads
// its params from each request), so a worker's program starts once, and
// Warm can start it before the first batch comes. Its owner closes it
// when the work is done; until then a program is stopped only when it
// fails.
type Pool struct {
	cfg Config

	mu     sync.Mutex
	idle   []*child
	closed bool
}

// NewPool returns a pool of cfg's programs; none runs until one is needed
// (or Warm).
func NewPool(cfg Config) *Pool {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = proto.DefaultMaxFrame
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	return &Pool{cfg: cfg}
}

// Def is the exec workload's definition for the registry, computing with
// p's programs. Its params are whatever --param sets, typed by their text
// and passed to the program in every request (the program checks them).
func (p *Pool) Def() workload.Def {
	return workload.Def{
		Name:      Name,
		Doc:       "each batch computed by a program in any language over stdin/stdout frames (--exec)",
		AnyParams: true,
		New: func(params workload.Params) (workload.Workload, error) {
			return p.New(params), nil
		},
	}
}

// New returns an exec workload sending params with every batch to p's
// programs.
func (p *Pool) New(params workload.Params) *Workload {
	return &Workload{pool: p, params: params}
}

// Warm starts programs until n are idle, so the first batches do not wait
// for a program to start (an interpreter's imports can take 100 ms).
func (p *Pool) Warm(n int) error {
	if p.cfg.Command == "" {
		return nil
	}
	for {
		p.mu.Lock()
		enough := p.closed || len(p.idle) >= n
		p.mu.Unlock()
		if enough {
			return nil
		}
		c, err := startChild(p.cfg)
		if err != nil {
			return fmt.Errorf("exec %q: %w", p.cfg.Command, err)
		}
		p.put(c)
	}
}

// take returns an idle program, or starts one.
func (p *Pool) take() (*child, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	return startChild(p.cfg)
}

// put keeps c for the next batch, or stops it once the pool is closed.
func (p *Pool) put(c *child) {
	p.mu.Lock()
	if !p.closed {
		p.idle = append(p.idle, c)
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		c.stop(stopGrace)
	}
}

// stopGrace is how long a program may take to exit once its stdin ends.
const stopGrace = 2 * time.Second

// Close stops every idle program (its stdin is closed, so a program
// reading frames sees the end and exits; one that does not is killed after
// stopGrace) and those returned later; it waits until they are reaped.
func (p *Pool) Close() error {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range idle {
		wg.Add(1)
		go func() { defer wg.Done(); c.stop(stopGrace) }() // owned: waited for below
	}
	wg.Wait()
	return nil
}

// Workload is the exec workload for one set of params: each batch goes to
// one of its pool's programs. Batches through one Workload are sent one at
// a time; give each lane its own (workload.Cache does).
type Workload struct {
	pool   *Pool
	params workload.Params

	mu    sync.Mutex // one batch at a time; guards below
	seq   uint64
	req   []byte
	frame []byte
	res   proto.Result
	b     proto.Batch
}

// Name is "exec".
func (w *Workload) Name() string { return Name }

// Process sends docs to a program and appends its reply to out. out.Hop
// is the time not spent computing in the program: encoding, the pipe both
// ways and decoding.
func (w *Workload) Process(docs []string, out *workload.Output) error {
	start := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	cfg := &w.pool.cfg
	if cfg.Command == "" {
		return fmt.Errorf("%w: exec: no program to run in this process (set --exec)", workload.ErrBatchFailed)
	}
	c, err := w.pool.take()
	if err != nil {
		return fmt.Errorf("%w: exec %q: %v", workload.ErrBatchFailed, cfg.Command, err)
	}
	compute, err := w.roundTrip(c, docs)
	if err != nil {
		c.stop(0) // exited, hung or out of step: the next batch starts a new one
		return fmt.Errorf("%w: exec %q: %v", workload.ErrBatchFailed, cfg.Command, err)
	}
	w.pool.put(c)
	// The reply was decoded into w.res.Out; hand its buffers to the caller
	// and keep the caller's (Reset) for the next reply.
	*out, w.res.Out = w.res.Out, *out
	out.Hop = max(time.Since(start)-compute, 0)
	if len(w.res.Errs) > 0 {
		return workload.DocErrors(w.res.Errs)
	}
	return nil
}

// roundTrip writes one request to c and reads its reply into w.res.
func (w *Workload) roundTrip(c *child, docs []string) (time.Duration, error) {
	w.seq++
	w.b = proto.Batch{ID: w.seq, Attempt: 1, Workload: Name, Params: w.params, Docs: docs}
	req, err := proto.AppendExecRequest(w.req[:0], &w.b)
	w.req, w.b.Docs = req, nil
	if err != nil {
		return 0, err
	}
	deadline := time.Now().Add(w.pool.cfg.Timeout)
	if err := c.write(req, deadline); err != nil {
		return 0, c.failure("write request", err)
	}
	frame, err := c.read(w.frame, w.pool.cfg.MaxFrame, deadline)
	w.frame = frame
	if err != nil {
		return 0, c.failure("read reply", err)
	}
	w.res.Out.Reset()
	compute, err := proto.DecodeExecReply(frame, &w.res)
	if err != nil {
		return 0, err
	}
	return compute, checkReply(&w.res, w.seq, len(docs))
}

// checkReply rejects a reply that does not answer the request or whose
// columns do not fit its documents: the program and the bridge disagree,
// and nothing it says can be trusted.
func checkReply(r *proto.Result, id uint64, n int) error {
	o := &r.Out
	switch {
	case r.BatchID != id:
		return fmt.Errorf("reply to request %d answered request %d", id, r.BatchID)
	case o.Dim > 0 && len(o.Vecs) != n*o.Dim:
		return fmt.Errorf("%d floats for %d documents of dim %d", len(o.Vecs), n, o.Dim)
	case o.Stride > 0 && len(o.Data) != n*o.Stride:
		return fmt.Errorf("%d bytes for %d documents of %d", len(o.Data), n, o.Stride)
	case len(o.Ends) > 0 && len(o.Ends) != n:
		return fmt.Errorf("%d byte ends for %d documents", len(o.Ends), n)
	case len(o.Spans) > 0:
		return errors.New("spans are not supported from an exec program")
	}
	for _, e := range r.Errs {
		if int(e.Doc) >= n {
			return fmt.Errorf("error for document %d of %d", e.Doc, n)
		}
	}
	return nil
}

// child is one running program.
type child struct {
	cmd    *exec.Cmd
	stdin  *os.File
	stdout *os.File
	in     *bufio.Reader
	exited chan struct{} // closed once the process is reaped
	err    error         // its exit status, set before exited is closed
}

func startChild(cfg Config) (*child, error) {
	cmd := exec.Command("/bin/sh", "-c", cfg.Command)
	cmd.Stderr = cfg.Stderr
	cmd.SysProcAttr = procattr.Child()
	cmd.SysProcAttr.Setpgid = true // its own group, so stop reaches what sh started
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	growPipe(inW)
	growPipe(outR)
	cmd.Stdin, cmd.Stdout = inR, outW
	err = cmd.Start()
	inR.Close() // the child's ends: ours would keep the pipes open after it exits
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("start: %w", err)
	}
	c := &child{cmd: cmd, stdin: inW, stdout: outR, in: bufio.NewReaderSize(outR, 64<<10), exited: make(chan struct{})}
	go func() { // owned: stop waits for it
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

func (c *child) write(b []byte, deadline time.Time) error {
	if err := c.stdin.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err := c.stdin.Write(b)
	return err
}

func (c *child) read(buf []byte, limit int, deadline time.Time) ([]byte, error) {
	if err := c.stdout.SetReadDeadline(deadline); err != nil {
		return buf, err
	}
	return proto.ReadFrame(c.in, buf, limit)
}

// failure says why a round trip broke: the program's exit, a hang, or err.
func (c *child) failure(op string, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%s: no reply in time: the program hung; killed", op)
	}
	select {
	case <-c.exited:
		return fmt.Errorf("%s: the program exited: %v", op, c.err)
	case <-time.After(100 * time.Millisecond): // a closed pipe is followed by the exit
	}
	return fmt.Errorf("%s: %w", op, err)
}

// stop ends the program: EOF on its stdin, then, if it has not exited
// after grace, SIGKILL to its process group (sh and whatever it started:
// killing sh alone would leave its child running), and waits until it is
// reaped.
func (c *child) stop(grace time.Duration) {
	c.stdin.Close()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.exited:
	case <-t.C:
		// Not reaped yet, so the group it leads still exists: -pid is ours.
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.exited
	}
	c.stdout.Close()
}
