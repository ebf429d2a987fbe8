//go:build !linux

package shm

import (
	"errors"
	"os"
)

// Supported says whether this platform has the shm data plane.
const Supported = false

var errUnsupported = errors.New("shm: shared-memory data plane needs Linux (memfd)")

func NewRegion(Geometry) (*Region, error)            { return nil, errUnsupported }
func OpenRegion(*os.File, Geometry) (*Region, error) { return nil, errUnsupported }
func (r *Region) Unmap() error                       { return nil }
func Socketpair() (parent, child *os.File, err error) {
	return nil, nil, errUnsupported
}

const msgTrunc = 0
