package worker

import "syscall"

// sysProcAttr asks the kernel to SIGKILL the child when its parent dies, so
// a SIGKILLed `ferry run` leaves no worker behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
