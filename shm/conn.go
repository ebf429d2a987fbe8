package shm

import (
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// Conn is one end of a descriptor socket (SOCK_SEQPACKET: one datagram per
// descriptor, boundaries kept, ordered, and EOF when the other end's
// process is gone, however it went).
type Conn struct {
	c   *net.UnixConn
	in  []byte
	out []byte
}

// NewConn wraps f (an end from Socketpair, or the fd a worker inherited);
// f is closed: the Conn holds its own descriptor.
func NewConn(f *os.File) (*Conn, error) {
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("shm: socket: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("shm: socket: %T is not a unix socket", c)
	}
	return &Conn{c: uc, in: make([]byte, MaxPacket+1), out: make([]byte, 0, MaxPacket)}, nil
}

// Send writes d as one datagram. Not for concurrent use; the Endpoint
// serialises its pairs' sends.
func (c *Conn) Send(d *Desc) error {
	c.out = d.Append(c.out[:0])
	_, err := c.c.Write(c.out)
	return err
}

// Recv reads the next datagram into d. A datagram that does not parse is
// an error wrapping ErrDescriptor (the caller counts it and reads on); any
// other error is the socket's (io.EOF: the peer is gone).
func (c *Conn) Recv(d *Desc) error {
	n, _, flags, _, err := c.c.ReadMsgUnix(c.in, nil)
	if err != nil {
		return err
	}
	if n == 0 { // the peer closed (or sent an empty datagram: the same to us, it ends the line)
		return io.EOF
	}
	if flags&msgTrunc != 0 || n > MaxPacket {
		return fmt.Errorf("%w: datagram over %d bytes", ErrDescriptor, MaxPacket)
	}
	return Parse(c.in[:n], d)
}

// SetReadDeadline bounds the next Recv.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.c.SetReadDeadline(t) }

// Close closes the socket; a Recv blocked on it returns.
func (c *Conn) Close() error { return c.c.Close() }
