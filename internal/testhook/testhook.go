// Package testhook holds ferry's TEST-ONLY crash hook: a process that
// exits on a given document, as a segfaulting model would, so the fault
// tests can prove such a document is isolated. It is read from the
// environment, never from config or the wire; never set it in production.
package testhook

import (
	"fmt"
	"os"
	"slices"

	"github.com/ferrylab/ferry/proto"
)

// CrashOn returns a hook that exits the process at once with code 3 when a
// batch holds a document with exactly the text of environment variable
// env; nil when env is unset. who names the process in its last words.
func CrashOn(env, who string) func(*proto.Batch) {
	text := os.Getenv(env)
	if text == "" {
		return nil
	}
	return func(b *proto.Batch) {
		if slices.Contains(b.Docs, text) {
			fmt.Fprintf(os.Stderr, "%s: %s matched batch %d; exiting with code 3 (test hook)\n", who, env, b.ID)
			os.Exit(3)
		}
	}
}
