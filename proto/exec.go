package proto

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Exec frames are what the exec bridge (bridge/) and a worker program in
// any language exchange on the program's stdin and stdout
// (docs/protocol.md). A frame is a 4-byte big-endian length, then that
// many bytes of msgpack:
//
//	request, to the program:  a Batch in the packed layout
//	reply, from the program:  [compute_ns, a Result in the packed layout]
//
// compute_ns is the program's own time on the batch, so the bridge can
// tell the pipe's cost from the computing. One request is answered before
// the next is sent.

// DefaultMaxFrame is the largest exec frame accepted by default: a
// worker's largest batch result (the broker's max_payload) fits.
const DefaultMaxFrame = 64 << 20

// frameHeader is the length prefix of an exec frame.
const frameHeader = 4

// AppendExecRequest appends b as one request frame.
func AppendExecRequest(dst []byte, b *Batch) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst, err := packed{}.AppendBatch(dst, b)
	if err != nil {
		return dst[:start], err
	}
	return finishFrame(dst, start)
}

// AppendExecReply appends r and the program's compute time as one reply
// frame: what a worker program written in Go sends (ferry exec-serve).
func AppendExecReply(dst []byte, compute time.Duration, r *Result) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = appendArrayLen(dst, 2)
	dst = appendInt(dst, max(int64(compute), 0))
	dst, err := packed{}.AppendResult(dst, r)
	if err != nil {
		return dst[:start], err
	}
	return finishFrame(dst, start)
}

func finishFrame(dst []byte, start int) ([]byte, error) {
	n := len(dst) - start - frameHeader
	if n > math.MaxUint32 {
		return dst[:start], fmt.Errorf("exec frame of %d bytes: %w", n, ErrLimit)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

// ReadFrame reads one frame from r into buf (grown as needed) and returns
// its payload. A frame longer than max (0 = DefaultMaxFrame) is refused
// before anything is allocated for it; io.EOF means r ended between frames.
func ReadFrame(r io.Reader, buf []byte, max int) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	var h [frameHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("exec frame header: %w", ErrTruncated)
		}
		return buf[:0], err
	}
	n := binary.BigEndian.Uint32(h[:])
	if uint64(n) > uint64(max) {
		return buf[:0], fmt.Errorf("exec frame of %d bytes over the limit of %d: %w", n, max, ErrLimit)
	}
	buf = grow(buf, int(n))
	if _, err := io.ReadFull(r, buf); err != nil {
		return buf[:0], fmt.Errorf("exec frame of %d bytes: %w (%v)", n, ErrTruncated, err)
	}
	return buf, nil
}

// DecodeExecRequest decodes a request frame's payload into b, within lim,
// as a worker decodes a batch.
func DecodeExecRequest(src []byte, b *Batch, lim Limits) error {
	return packed{lim: lim.WithDefaults()}.DecodeBatch(src, b)
}

// DecodeExecReply decodes a reply frame's payload into r and returns the
// program's compute time.
func DecodeExecReply(src []byte, r *Result) (time.Duration, error) {
	rd := reader{b: src}
	n, err := rd.arrayLen("exec reply", 1)
	if err != nil {
		return 0, fmt.Errorf("decode exec reply: %w", err)
	}
	if n != 2 {
		return 0, fmt.Errorf("decode exec reply: %d fields, want [compute_ns, result]: %w", n, ErrMalformed)
	}
	ns, err := rd.int("compute_ns")
	if err != nil {
		return 0, fmt.Errorf("decode exec reply: %w", err)
	}
	if ns < 0 {
		return 0, fmt.Errorf("decode exec reply: compute_ns %d: %w", ns, ErrMalformed)
	}
	if err := (packed{}).DecodeResult(src[rd.off:], r); err != nil {
		return 0, fmt.Errorf("exec reply: %w", err)
	}
	return time.Duration(ns), nil
}

// AppendPipeStage appends the fourth field of a HeaderStagesNs value, after
// AppendStages' three: the time a batch spent on an exec program's pipe
// (frames, both ways), taken out of compute. Nothing is appended for 0, so
// workers that compute in-process send the three fields they always did.
func AppendPipeStage(b []byte, pipe time.Duration) []byte {
	if pipe <= 0 {
		return b
	}
	return strconv.AppendInt(append(b, ' '), int64(pipe), 10)
}

// ParsePipeStage reads the fourth field of a HeaderStagesNs value; 0 when
// it is absent or bad.
func ParsePipeStage(v string) time.Duration {
	f := strings.Fields(v)
	if len(f) < 4 {
		return 0
	}
	n, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n)
}

// AppendQueueStage appends the fifth field of a HeaderStagesNs value, the
// time the batch waited in the worker from its arrival to the start of its
// decode, after the fourth (pipe), which it writes as 0 when
// AppendPipeStage wrote none. Nothing is appended for 0.
func AppendQueueStage(b []byte, pipe, queue time.Duration) []byte {
	if queue <= 0 {
		return b
	}
	if pipe <= 0 {
		b = append(b, " 0"...)
	}
	return strconv.AppendInt(append(b, ' '), int64(queue), 10)
}

// ParseQueueStage reads the fifth field of a HeaderStagesNs value; 0 when
// it is absent or bad (a worker from before the queue stage sends 3 or 4).
func ParseQueueStage(v string) time.Duration {
	f := strings.Fields(v)
	if len(f) < 5 {
		return 0
	}
	n, err := strconv.ParseInt(f[4], 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n)
}
