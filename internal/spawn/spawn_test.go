package spawn

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
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
