// Package procattr holds the one set of attributes ferry gives every child
// process it spawns (workers, the echo responder, the Python baseline).
package procattr

import "syscall"

// Child asks the kernel to SIGKILL the child when its parent dies, so a
// SIGKILLed `ferry run` leaves no child behind.
func Child() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
