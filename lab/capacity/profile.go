package capacity

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"runtime/pprof"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// The coordinator's serial path: work on every batch that one goroutine
// does at a time, whatever the cores. A CPU profile finds it by function;
// what is under these frames is serial.
var serialFrames = []struct{ pkg, suffix string }{
	// One per connection: every result is read and parsed here.
	{"github.com/nats-io/nats", ".(*Conn).readLoop"},
	// Results are put in order and written under the collector's lock.
	{"github.com/ferrylab/ferry/coordinator", ".(*collector).complete"},
}

func isSerial(fn string) bool {
	for _, f := range serialFrames {
		if strings.HasPrefix(fn, f.pkg) && strings.HasSuffix(fn, f.suffix) {
			return true
		}
	}
	return false
}

// errProfiling is returned when this process is already being profiled
// (FERRY_CPUPROFILE): the serial path is then not measured.
var errProfiling = errors.New("capacity: a CPU profile is already running")

// serialCPU runs run under a CPU profile of this process and returns its
// result, the CPU the profile found on the serial path, and all it found.
func serialCPU(run func() (Sample, error)) (r Sample, serial, all time.Duration, err error) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		r, runErr := run()
		return r, 0, 0, errors.Join(runErr, errProfiling)
	}
	r, err = run()
	pprof.StopCPUProfile()
	if err != nil {
		return r, 0, 0, err
	}
	if serial, err = profileCPU(bytes.NewReader(buf.Bytes()), isSerial); err != nil {
		return r, 0, 0, err
	}
	all, err = profileCPU(bytes.NewReader(buf.Bytes()), func(string) bool { return true })
	return r, serial, all, err
}

// profileCPU sums the CPU of a gzipped pprof CPU profile's samples that
// have a frame whose function match accepts.
func profileCPU(r io.Reader, match func(fn string) bool) (time.Duration, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return 0, fmt.Errorf("capacity: read profile: %w", err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return 0, fmt.Errorf("capacity: read profile: %w", err)
	}
	p, err := parseProfile(data)
	if err != nil {
		return 0, err
	}
	cpu := -1 // the value index of cpu nanoseconds
	for i, t := range p.sampleTypes {
		if t == "cpu" {
			cpu = i
		}
	}
	if cpu < 0 {
		return 0, errors.New("capacity: profile has no cpu samples")
	}
	hit := map[uint64]bool{} // location id -> a matching frame
	for id, fns := range p.locations {
		for _, fn := range fns {
			if match(p.functions[fn]) {
				hit[id] = true
			}
		}
	}
	var total int64
	for _, s := range p.samples {
		for _, loc := range s.locations {
			if hit[loc] {
				if cpu < len(s.values) {
					total += s.values[cpu]
				}
				break
			}
		}
	}
	return time.Duration(total), nil
}

// profile is the part of a pprof profile (profile.proto) profileCPU reads.
type profile struct {
	sampleTypes []string            // type name of each value
	samples     []profileSample     //
	locations   map[uint64][]uint64 // location id -> function ids, innermost first
	functions   map[uint64]string   // function id -> name
}

type profileSample struct {
	locations []uint64
	values    []int64
}

// parseProfile decodes the fields of profile.proto profileCPU needs:
// Profile{sample_type=1, sample=2, location=4, function=5, string_table=6},
// ValueType{type=1}, Sample{location_id=1, value=2}, Location{id=1,
// line=4}, Line{function_id=1}, Function{id=1, name=2}.
func parseProfile(b []byte) (*profile, error) {
	p := &profile{locations: map[uint64][]uint64{}, functions: map[uint64]string{}}
	var strs []string
	var typeIdx []uint64
	funcName := map[uint64]uint64{} // function id -> string index
	err := fields(b, func(num protowire.Number, v []byte, x uint64) error {
		switch num {
		case 1:
			return fields(v, func(n protowire.Number, _ []byte, x uint64) error {
				if n == 1 {
					typeIdx = append(typeIdx, x)
				}
				return nil
			})
		case 2:
			var s profileSample
			err := fields(v, func(n protowire.Number, v []byte, x uint64) error {
				switch n {
				case 1:
					s.locations = appendVarints(s.locations, v, x)
				case 2:
					for _, u := range appendVarints(nil, v, x) {
						s.values = append(s.values, int64(u))
					}
				}
				return nil
			})
			p.samples = append(p.samples, s)
			return err
		case 4:
			var id uint64
			var fns []uint64
			err := fields(v, func(n protowire.Number, v []byte, x uint64) error {
				switch n {
				case 1:
					id = x
				case 4:
					return fields(v, func(n protowire.Number, _ []byte, x uint64) error {
						if n == 1 {
							fns = append(fns, x)
						}
						return nil
					})
				}
				return nil
			})
			p.locations[id] = fns
			return err
		case 5:
			var id, name uint64
			err := fields(v, func(n protowire.Number, _ []byte, x uint64) error {
				switch n {
				case 1:
					id = x
				case 2:
					name = x
				}
				return nil
			})
			funcName[id] = name
			return err
		case 6:
			strs = append(strs, string(v))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	str := func(i uint64) string {
		if i < uint64(len(strs)) {
			return strs[i]
		}
		return ""
	}
	for _, i := range typeIdx {
		p.sampleTypes = append(p.sampleTypes, str(i))
	}
	for id, i := range funcName {
		p.functions[id] = str(i)
	}
	return p, nil
}

// fields calls fn with each field of message b: a length-delimited field's
// bytes as v, a varint's value as x; other wire types are skipped.
func fields(b []byte, fn func(num protowire.Number, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("capacity: profile: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("capacity: profile: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if typ == protowire.VarintType || typ == protowire.BytesType {
			if err := fn(num, v, x); err != nil {
				return err
			}
		}
	}
	return nil
}

// appendVarints appends a repeated varint field: packed (v holds them) or
// one value (x).
func appendVarints(dst []uint64, v []byte, x uint64) []uint64 {
	if v == nil {
		return append(dst, x)
	}
	for len(v) > 0 {
		u, n := protowire.ConsumeVarint(v)
		if n < 0 {
			break
		}
		dst = append(dst, u)
		v = v[n:]
	}
	return dst
}
