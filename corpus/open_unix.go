//go:build unix

package corpus

import "syscall"

// openFlags keep a folder's file open from following a link (ELOOP) or
// blocking on a named pipe: the entry is then refused by its mode.
const openFlags = syscall.O_NOFOLLOW | syscall.O_NONBLOCK
