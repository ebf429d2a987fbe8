//go:build !linux

package worker

import "syscall"

// sysProcAttr has no parent-death signal off Linux; workers poll their
// parent PID instead (Config.ParentPID).
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
