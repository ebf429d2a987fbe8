// Package profile writes a CPU profile of the whole process, a debugging
// aid switched on by FERRY_CPUPROFILE=cpu.out (child processes write
// cpu.out.<pid>). It measures nothing for reports.
package profile

import (
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
)

// Env names the variable that switches profiling on.
const Env = "FERRY_CPUPROFILE"

// Start starts the CPU profile named by Env, if set, and returns what
// stops it. A child of ferry (started with --parent-pid) adds its PID to
// the name, so workers do not overwrite the coordinator's profile.
func Start() (stop func()) {
	path := os.Getenv(Env)
	if path == "" {
		return func() {}
	}
	if slices.ContainsFunc(os.Args, func(a string) bool { return strings.HasPrefix(a, "--parent-pid") }) {
		path = fmt.Sprintf("%s.%d", path, os.Getpid())
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferry: cpu profile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "ferry: cpu profile:", err)
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
