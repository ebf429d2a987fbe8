//go:build linux

package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/fleet"
	"github.com/ferrylab/ferry/report"
)

// ferry run --data-plane nats,shm: processes over NATS and over shared
// memory side by side, with identical results, and every local worker on
// shm in the shm row.
func TestDataPlanesSideBySide(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	var stdout bytes.Buffer
	err := Run(context.Background(), Config{
		Job:       coordinator.Config{Workload: "embed", Workers: 2, BatchSize: 50},
		Modes:     []string{coordinator.ModeGoroutines, coordinator.ModeProcesses},
		DataPlane: []string{coordinator.PlaneNATS, coordinator.PlaneShm},
		Input:     Input{Gen: corpus.GenConfig{Seed: 5, Docs: 2000, Words: 40}},
		Fleet:     fleet.Config{Exe: ferryBin},
		Format:    "json",
		Stdout:    &stdout,
	})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, stdout.String())
	}
	var r report.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("report: %v", err)
	}
	var names []string
	for _, m := range r.Modes {
		names = append(names, m.Mode)
	}
	if got, want := strings.Join(names, ","), "goroutines,processes,processes/shm"; got != want {
		t.Fatalf("modes %s, want %s", got, want)
	}
	if !r.IdenticalResults {
		t.Errorf("results differ across planes")
	}
	shm := r.Modes[2]
	if len(shm.Planes) != 2 {
		t.Errorf("shm row planes %v, want 2 workers", shm.Planes)
	}
	for addr, p := range shm.Planes {
		if p != coordinator.PlaneShm {
			t.Errorf("worker %s on %q in the shm row", addr, p)
		}
	}
	for addr, p := range r.Modes[1].Planes {
		if p != coordinator.PlaneNATS {
			t.Errorf("worker %s on %q in the NATS row", addr, p)
		}
	}
}

func TestDataPlaneValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string
	}{
		{"unknown plane", Config{DataPlane: []string{"carrier-pigeon"}}, "data_plane"},
		{"shm with shards", Config{DataPlane: []string{"shm"}, Coordinators: 2}, "coordinators"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cfg
			c.Modes, c.Job = []string{coordinator.ModeProcesses}, coordinator.Config{Workload: "embed", Workers: 1, BatchSize: 10}
			c.Input = Input{Gen: corpus.GenConfig{Docs: 10}}
			err := c.Validate()
			if !errors.Is(err, coordinator.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Validate = %v, want an invalid %s", err, tc.field)
			}
		})
	}
}
