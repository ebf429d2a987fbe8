// Package ferry is the entry point of a ferry binary: Main runs the whole
// command line (run, worker, coordinator, sweep, recommend, bench and the
// rest). cmd/ferry is one such binary; a user's own is another, with their
// workloads added, the way Caddy and k6 are extended:
//
//	package main
//
//	import (
//		"github.com/ferrylab/ferry"
//		"example.com/minhash"
//	)
//
//	func main() { ferry.Main(minhash.Workload) }
//
// The engine is in the packages below it (workload, coordinator, worker,
// fleet, lab); this package only wires them to a command line.
package ferry

import (
	"os"

	"github.com/ferrylab/ferry/internal/command"
	"github.com/ferrylab/ferry/workload"
)

// Main registers workloads (workload.Register), runs the ferry command line
// in os.Args and exits the process with its exit code: 0 on success, 2 for
// invalid configuration (an invalid or duplicate workload too), 130 on
// interrupt, 1 otherwise. Call it from main, and only there.
//
// Every subcommand sees the workloads: `run --workload <name>` computes
// them in every mode, and the worker processes it starts are this same
// executable, so they have them too. Their parameters are set with
// --param key=value or the config file's param key.
func Main(workloads ...workload.Def) {
	os.Exit(command.Main(workloads...))
}
