package shm

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Supported says whether this platform has the shm data plane.
const Supported = true

// NewRegion creates an anonymous memfd of g.Size() bytes and maps it.
// The memfd has no name in any file system (not in /dev/shm): it is freed
// when the last process holding it or a mapping of it exits, however it
// exits. Pages are allocated as they are first written, so a region costs
// the memory of the largest batches sent, at most g.Size().
func NewRegion(g Geometry) (*Region, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	fd, err := unix.MemfdCreate("ferry-shm", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("shm: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "ferry-shm")
	if err := unix.Ftruncate(fd, int64(g.Size())); err != nil {
		f.Close()
		return nil, fmt.Errorf("shm: size region: %w", err)
	}
	// The size is sealed: neither end can shrink the file under the other's
	// mapping (a SIGBUS on the next touch).
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		f.Close()
		return nil, fmt.Errorf("shm: seal region: %w", err)
	}
	return mapRegion(f, g)
}

// OpenRegion maps the memfd f (passed by the coordinator) of geometry g,
// after checking that its size is g's and that it is sealed against
// shrinking.
func OpenRegion(f *os.File, g Geometry) (*Region, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("shm: stat region: %w", err)
	}
	if st.Size != int64(g.Size()) {
		return nil, fmt.Errorf("shm: region of %d bytes, want %d", st.Size, g.Size())
	}
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil || seals&unix.F_SEAL_SHRINK == 0 {
		return nil, fmt.Errorf("shm: region is not sealed against shrinking (%v)", err)
	}
	return mapRegion(f, g)
}

func mapRegion(f *os.File, g Geometry) (*Region, error) {
	mem, err := unix.Mmap(int(f.Fd()), 0, g.Size(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("shm: mmap: %w", err)
	}
	return &Region{Geometry: g, mem: mem, file: f}, nil
}

// Unmap releases the mapping and the memfd. No slot of r may be used after.
func (r *Region) Unmap() error {
	r.CloseFile()
	if r.mem == nil {
		return nil
	}
	err := unix.Munmap(r.mem)
	r.mem = nil
	return err
}

// Socketpair returns the two ends of a SOCK_SEQPACKET unix socket pair,
// close-on-exec (the child's end is passed explicitly).
func Socketpair() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("shm: socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "ferry-shm-sock"), os.NewFile(uintptr(fds[1]), "ferry-shm-sock"), nil
}

const msgTrunc = unix.MSG_TRUNC
