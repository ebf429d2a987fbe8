// Package progress draws progress bars on stderr for long runs, when
// stderr is a terminal; elsewhere its bars draw nothing. It only draws:
// callers say what is done.
package progress

import (
	"fmt"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Terminal reports whether stderr is a terminal.
func Terminal() bool { return term.IsTerminal(int(os.Stderr.Fd())) }

// Docs is a bar counting one mode's documents (total -1 = unknown).
func Docs(mode string, total int64) (set func(int64), done func()) {
	if !Terminal() {
		return func(int64) {}, func() {}
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(fmt.Sprintf("%-10s", mode)),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("docs"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	return func(n int64) { _ = bar.Set64(n) }, func() { _ = bar.Finish(); _ = bar.Exit() }
}

// Runs is a bar counting a sweep's runs, with rate and ETA; set also
// describes the run just done.
func Runs(total int) (set func(desc string, done int), done func()) {
	if !Terminal() {
		return func(string, int) {}, func() {}
	}
	bar := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription("sweep"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetItsString("runs"),
		progressbar.OptionShowIts(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	return func(desc string, n int) { bar.Describe(desc); _ = bar.Set(n) }, func() { _ = bar.Finish(); _ = bar.Exit() }
}
