//go:build linux

package bridge

import (
	"os"

	"golang.org/x/sys/unix"
)

// pipeSize is the buffer asked for each pipe to the program: a batch of a
// hundred 384-float vectors (154 KB) then crosses in one write, not in
// 64 KiB turns that each wait for the other side to be scheduled. The
// kernel caps it at /proc/sys/fs/pipe-max-size (1 MiB by default).
const pipeSize = 1 << 20

// growPipe enlarges f's pipe buffer; failing that, the default serves.
func growPipe(f *os.File) {
	if sc, err := f.SyscallConn(); err == nil {
		_ = sc.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize) })
	}
}
