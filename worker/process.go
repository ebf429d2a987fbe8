package worker

import (
	"fmt"
	"os"
	"runtime"
	"slices"

	"github.com/ferrylab/ferry/internal/testhook"
	"github.com/ferrylab/ferry/proto"
)

// OneCore gives this process one P unless GOMAXPROCS is set. A worker
// stands for one core and computes one batch at a time; with one P its
// reader, handler and flusher goroutines hand over on the same thread
// instead of waking another, which cut a worker's CPU per empty batch by
// about 40% in BenchmarkDispatch (see docs/wire.md).
func OneCore() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

// EnvCrashOn names a TEST-ONLY hook: a worker whose batch holds a document
// with exactly this text exits at once with code 3, as a segfaulting model
// would. The fault tests (faulttest/) use it to prove that a document that
// kills its worker is isolated by bisection. It is deliberately not a config
// key and never travels on the wire; never set it in production.
const EnvCrashOn = "FERRY_TEST_CRASH_ON"

// EnvHangOn names a TEST-ONLY hook like EnvCrashOn: a worker whose batch
// holds a document with exactly this text never finishes that batch, as a
// model stuck in a loop would. The fault tests use it to prove that a hung
// document is isolated and reported. Never set it in production.
const EnvHangOn = "FERRY_TEST_HANG_ON"

// CrashHook is the Config.BeforeBatch of the EnvCrashOn and EnvHangOn test
// hooks, read from the environment; nil when neither is set.
func CrashHook() func(*proto.Batch) {
	crash, hang := testhook.CrashOn(EnvCrashOn, "ferry worker"), os.Getenv(EnvHangOn)
	if crash == nil && hang == "" {
		return nil
	}
	return func(b *proto.Batch) {
		if crash != nil {
			crash(b)
		}
		if hang != "" && slices.Contains(b.Docs, hang) {
			fmt.Fprintf(os.Stderr, "ferry worker: %s matched batch %d; hanging (test hook)\n", EnvHangOn, b.ID)
			select {} // the worker's batch never ends; its other goroutines run on
		}
	}
}
