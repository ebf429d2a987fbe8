package bridge

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ferrylab/ferry/internal/testhook"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/workload"
)

// EnvCrashOn names a TEST-ONLY hook of `ferry exec-serve`: a request
// holding a document with exactly this text makes the program exit at once
// with code 3, as a crashing model would, so tests can prove that the
// bridge treats it as a worker failure (retry, bisection). It is apart from
// worker.EnvCrashOn so that the worker around the program survives it.
// Never set it in production.
const EnvCrashOn = "FERRY_TEST_EXEC_CRASH_ON"

// CrashHook is the ServeConfig.BeforeBatch of EnvCrashOn, read from the
// environment; nil when it is not set.
func CrashHook() func(*proto.Batch) { return testhook.CrashOn(EnvCrashOn, "ferry exec-serve") }

// ServeConfig configures Serve.
type ServeConfig struct {
	Workload string       // the registered workload computing every request; required
	Limits   proto.Limits // bounds on decoded requests; zero = proto's defaults
	// BeforeBatch, when set, is called with each decoded request before it
	// is computed: the test hook of EnvCrashOn. nil = none.
	BeforeBatch func(*proto.Batch)
}

// Serve is the program's end of the exec frames, for a program written in
// Go: it reads requests from r until r ends, computes each with the
// workload cfg names (with the params each request carries) and writes the
// reply to w. A document the workload fails is reported in the reply; a
// batch it fails as a whole (workload.ErrBatchFailed) or a request it
// cannot decode ends Serve with an error, which the bridge sees as the
// program exiting. `ferry exec-serve --workload NAME` runs it on stdin and
// stdout.
func Serve(r io.Reader, w io.Writer, cfg ServeConfig) error {
	name := cfg.Workload
	if _, ok := workload.Lookup(name); !ok {
		return fmt.Errorf("%w %q (known: %v)", workload.ErrUnknown, name, workload.Names())
	}
	in := bufio.NewReaderSize(r, 64<<10)
	var (
		wls   workload.Cache
		b     proto.Batch
		res   proto.Result
		frame []byte
		reply []byte
	)
	defer wls.Close()
	for {
		var err error
		frame, err = proto.ReadFrame(in, frame, 0)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := proto.DecodeExecRequest(frame, &b, cfg.Limits); err != nil {
			return err
		}
		if cfg.BeforeBatch != nil {
			cfg.BeforeBatch(&b)
		}
		wl, err := wls.Get(name, b.Params)
		if err != nil {
			return err
		}
		start := time.Now()
		res.BatchID, res.Attempt = b.ID, b.Attempt
		if res.Errs, err = workload.ComputeBatch(wl, b.Docs, &res.Out, res.Errs); err != nil {
			return err
		}
		if reply, err = proto.AppendExecReply(reply[:0], time.Since(start), &res); err != nil {
			return err
		}
		if _, err := w.Write(reply); err != nil {
			return err
		}
	}
}
