package faulttest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/internal/natstest"
)

// TestWorkerWrongPasswordGivesUp: `ferry worker` with a password the broker
// refuses is a configuration error (exit code 2), alone or as a pool of
// children; the pool restarts its children with growing pauses and gives up,
// saying why, instead of restarting them every 50 ms forever.
func TestWorkerWrongPasswordGivesUp(t *testing.T) {
	b := natstest.NewBroker(t, broker.Options{Users: []broker.User{{Name: "worker", Password: "right", Role: broker.RoleWorker}}})
	for _, procs := range []string{"1", "2"} {
		t.Run("procs="+procs, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, ferryBin, "worker", "--procs", procs, "--log-level", "warn")
			cmd.Env = append(os.Environ(), "FERRY_NATS_URL="+b.URL(), "FERRY_NATS_USER=worker", "FERRY_NATS_PASSWORD=wrong")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("ferry worker --procs %s with a wrong password still runs after 2 minutes:\n%s", procs, tail(stderr.Bytes(), 2048))
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Errorf("err = %v, want exit code 2; stderr:\n%s", err, tail(stderr.Bytes(), 2048))
			}
			if last := lastLine(stderr.String()); !strings.Contains(stderr.String(), "Authorization Violation") ||
				(procs != "1" && !strings.Contains(last, "giving up")) {
				t.Errorf("stderr:\n%s\nwant the auth error, and the pool's last line saying it gave up", tail(stderr.Bytes(), 2048))
			}
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
