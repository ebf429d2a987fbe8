//go:build !linux

package llm

import "testing"

// raiseNoFile is a no-op off linux; Go already raises the limit on darwin.
func raiseNoFile(tb testing.TB, need uint64) { tb.Helper() }
