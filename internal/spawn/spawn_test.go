package spawn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrylab/ferry/internal/poll"
)

// A child that exits at once, every time (a wrong password, a bad flag),
// is restarted with growing pauses and then given up on, with an error
// that says so and carries the child's exit status.
func TestRestartGivesUpOnImmediateFailures(t *testing.T) {
	p, err := Start(context.Background(), Config{
		Exe: "/bin/sh", Args: []string{"-c", "exit 2"}, Procs: 2, Restart: true, MaxStartFailures: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	select {
	case <-p.Done():
	case <-time.After(time.Minute):
		t.Fatalf("the pool still restarts after %d restarts", p.Restarts())
	}
	err = p.Err()
	var exit *exec.ExitError
	if !errors.Is(err, ErrGaveUp) || !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(err.Error(), "3 times in a row") {
		t.Fatalf("err = %v, want ErrGaveUp after 3 exits with the exit status 2", err)
	}
	if got := p.Restarts(); got > 2*2 {
		t.Errorf("%d restarts, want at most 2 per child before giving up", got)
	}
}

// The pause before a restart doubles with each immediate failure, up to a cap.
func TestRestartBackoff(t *testing.T) {
	b := newRestartBackoff()
	var last time.Duration
	for i := range 12 {
		d := b.NextBackOff()
		if d <= 0 || d > restartMax*6/5 {
			t.Fatalf("pause %d = %s, want within (0, %s] (±20%%)", i, d, restartMax)
		}
		if i == 0 && d > 2*restartFirst {
			t.Errorf("first pause %s, want about %s", d, restartFirst)
		}
		last = d
	}
	if last < restartMax/2 {
		t.Errorf("pause after 12 failures %s, want near the cap %s", last, restartMax)
	}
}

// Files gives every start, restarts included, files of its own: the
// child reads the one passed to it as fd 3 and the variable naming it, and
// the pool closes its copies.
func TestFilesPerStart(t *testing.T) {
	var mu sync.Mutex
	var readers []*os.File
	var writers []*os.File
	files := func() ([]*os.File, []string, error) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		readers = append(readers, r)
		writers = append(writers, w)
		return []*os.File{w}, []string{fmt.Sprintf("START=%d", len(writers))}, nil
	}
	// Each child writes its start number to fd 3 and exits: a crash the
	// pool restarts, after the startup window so it does not give up.
	p, err := Start(context.Background(), Config{
		Exe: "/bin/sh", Args: []string{"-c", `echo "$START" >&3; exec sleep 0.3`}, Procs: 1, Restart: true,
		Files: files, StartupWindow: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	for i := range 2 {
		var r *os.File
		poll.WaitFor(t, 30*time.Second, fmt.Sprintf("start %d", i+1), func() bool {
			mu.Lock()
			defer mu.Unlock()
			if len(readers) > i {
				r = readers[i]
			}
			return r != nil
		})
		b := make([]byte, 16)
		n, err := r.Read(b)
		if err != nil {
			t.Fatalf("start %d: %v", i+1, err)
		}
		if got, want := strings.TrimSpace(string(b[:n])), strconv.Itoa(i+1); got != want {
			t.Errorf("start %d: child read START=%s from its own fd 3, want %s", i+1, got, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if _, err := writers[0].Write([]byte("x")); err == nil {
		t.Error("the pool kept its copy of the first child's file open")
	}
}
