package floor

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/ferrylab/ferry/internal/procattr"
)

// pyPool is the Python baseline script: one task at a time through
// concurrent.futures.ProcessPoolExecutor, echoing a bytes payload.
//
//go:embed pypool.py
var pyPool string

// ErrNoPython is returned by FindPython when no interpreter is found.
var ErrNoPython = errors.New("transport: no python3 interpreter on PATH")

// FindPython resolves the python setting: "auto" finds python3 on PATH
// (ErrNoPython if there is none), "off" or "" gives "" (no baseline), and
// anything else is taken as the interpreter's path.
func FindPython(setting string) (string, error) {
	switch setting {
	case "", "off":
		return "", nil
	case "auto":
		p, err := exec.LookPath("python3")
		if err != nil {
			return "", ErrNoPython
		}
		return p, nil
	}
	return exec.LookPath(setting)
}

// MeasurePython times roundTrips one-at-a-time ProcessPoolExecutor round
// trips per size with the given interpreter, after a short warm-up, and
// returns one Sample per size. It is Python's side of the question ferry
// answers: what does crossing a process boundary cost per task.
func MeasurePython(ctx context.Context, python string, sizes []int, roundTrips int) (version string, samples []Sample, err error) {
	arg := make([]string, len(sizes))
	for i, s := range sizes {
		arg[i] = strconv.Itoa(s)
	}
	cmd := exec.CommandContext(ctx, python, "-c", pyPool, strings.Join(arg, ","), strconv.Itoa(roundTrips))
	cmd.SysProcAttr = procattr.Child()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", nil, fmt.Errorf("transport: python baseline (%s): %w: %s", python, err, lastLine(stderr.String()))
	}
	var res struct {
		Python string               `json:"python"`
		Sizes  map[string][]float64 `json:"sizes"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return "", nil, fmt.Errorf("transport: python baseline output: %w", err)
	}
	samples = make([]Sample, len(sizes))
	for i, s := range sizes {
		us := res.Sizes[strconv.Itoa(s)]
		if len(us) != roundTrips {
			return "", nil, fmt.Errorf("transport: python baseline: %d round trips of %d bytes, want %d", len(us), s, roundTrips)
		}
		var t times
		for _, v := range us {
			t.Add(time.Duration(v * float64(time.Microsecond)))
		}
		samples[i] = summarise(&t)
	}
	return res.Python, samples, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
