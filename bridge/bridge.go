// Package bridge is the exec bridge: a workload that computes each batch
// in a program written in any language, run as a long-lived child process
// that reads request frames on its stdin and writes reply frames on its
// stdout (proto's exec frames; docs/protocol.md).
//
// It is a workload like any other, so everything around it holds: a
// `ferry worker --exec CMD` stays the NATS micro service, with its limits,
// stage timings and metrics, and the coordinator's retries, deadlines and
// bisection; in-process modes run one child per lane. A child that exits,
// hangs past Config.Timeout or breaks the protocol fails the batch as a
// whole (workload.ErrBatchFailed: the worker answers with an error, the
// coordinator retries the batch and bisects it if it keeps failing) and is
// started again for the next batch. A document the program itself
// rejects is failed alone, as the program's reply says.
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

// Def is the exec workload's definition for the registry. Its params are
// whatever --param sets, typed by their text and passed to the program in
// every request (the program validates them).
func Def(cfg Config) workload.Def {
	return workload.Def{
		Name:      Name,
		Doc:       "each batch computed by a program in any language over stdin/stdout frames (--exec)",
		AnyParams: true,
		New: func(p workload.Params) (workload.Workload, error) {
			return New(cfg, p), nil
		},
	}
}

// Workload is the exec workload: one child program, started on first use,
// computing one batch at a time. It is safe for concurrent use, but
// batches queue for its one child: give each lane its own (workload.Cache
// does). Close stops the child.
type Workload struct {
	cfg    Config
	params workload.Params

	mu    sync.Mutex // one batch at a time through the child; guards below
	child *child
	seq   uint64
	req   []byte
	frame []byte
	res   proto.Result
	b     proto.Batch
}

// New returns an exec workload sending p with every batch.
func New(cfg Config, p workload.Params) *Workload {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = proto.DefaultMaxFrame
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	return &Workload{cfg: cfg, params: p}
}

// Name is "exec".
func (w *Workload) Name() string { return Name }

// Process sends docs to the child and appends its reply to out. out.Hop is
// the time not spent computing in the child: encoding, the pipe both ways
// and decoding.
func (w *Workload) Process(docs []string, out *workload.Output) error {
	start := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cfg.Command == "" {
		return fmt.Errorf("%w: exec: no program to run in this process (set --exec)", workload.ErrBatchFailed)
	}
	compute, err := w.roundTrip(docs)
	if err != nil {
		w.stop(0) // exited, hung or out of step: the next batch starts a new one
		return fmt.Errorf("%w: exec %q: %v", workload.ErrBatchFailed, w.cfg.Command, err)
	}
	// The reply was decoded into w.res.Out; hand its buffers to the caller
	// and keep the caller's (Reset) for the next reply.
	*out, w.res.Out = w.res.Out, *out
	out.Hop = max(time.Since(start)-compute, 0)
	if len(w.res.Errs) > 0 {
		return workload.DocErrors(w.res.Errs)
	}
	return nil
}

// roundTrip writes one request and reads its reply into w.res.
func (w *Workload) roundTrip(docs []string) (time.Duration, error) {
	if w.child == nil {
		c, err := startChild(w.cfg)
		if err != nil {
			return 0, err
		}
		w.child = c
	}
	w.seq++
	w.b = proto.Batch{ID: w.seq, Attempt: 1, Workload: Name, Params: w.params, Docs: docs}
	req, err := proto.AppendExecRequest(w.req[:0], &w.b)
	w.req, w.b.Docs = req, nil
	if err != nil {
		return 0, err
	}
	deadline := time.Now().Add(w.cfg.Timeout)
	c := w.child
	if err := c.write(req, deadline); err != nil {
		return 0, c.failure("write request", err)
	}
	frame, err := c.read(w.frame, w.cfg.MaxFrame, deadline)
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

// Close stops the child, if any: its stdin is closed, so a program reading
// frames sees the end and exits; one that does not is killed.
func (w *Workload) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stop(2 * time.Second)
	return nil
}

func (w *Workload) stop(grace time.Duration) {
	if w.child != nil {
		w.child.stop(grace)
		w.child = nil
	}
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
