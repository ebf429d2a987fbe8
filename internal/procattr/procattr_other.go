//go:build !linux

// Package procattr holds the one set of attributes ferry gives every child
// process it spawns (workers, the echo responder, the Python baseline).
package procattr

import "syscall"

// Child has no parent-death signal off Linux; workers poll their parent PID
// instead (worker.Config.ParentPID).
func Child() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
