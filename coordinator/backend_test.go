package coordinator_test

import (
	"errors"
	"testing"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/proto"
)

func TestNewBackend(t *testing.T) {
	_, url := natstest.NewServer(t)
	nc := natstest.Connect(t, url)
	packed, err := proto.NewCodec("packed", proto.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	job := coordinator.Config{Workers: 3}
	tests := []struct {
		name     string
		cfg      coordinator.BackendConfig
		wantName string // "" = want an error wrapping ErrInvalidConfig
		workers  int    // WorkerCount for in-process modes; 0 = not checked
	}{
		{name: "serial", cfg: coordinator.BackendConfig{Mode: coordinator.ModeSerial, Job: job}, wantName: "serial", workers: 1},
		{name: "goroutines", cfg: coordinator.BackendConfig{Mode: coordinator.ModeGoroutines, Job: job}, wantName: "goroutines", workers: 3},
		{name: "gil", cfg: coordinator.BackendConfig{Mode: coordinator.ModeGIL, Job: job}, wantName: "gil", workers: 3},
		{name: "codec", cfg: coordinator.BackendConfig{Mode: coordinator.ModeCodec, Job: job}, wantName: "codec", workers: 3},
		{name: "codec given a codec", cfg: coordinator.BackendConfig{Mode: coordinator.ModeCodec, Job: job, Codec: packed}, wantName: "codec", workers: 3},
		{name: "in-process ignores the connection", cfg: coordinator.BackendConfig{Mode: coordinator.ModeGoroutines, Job: job, Conn: nc}, wantName: "goroutines", workers: 3},
		{name: "processes", cfg: coordinator.BackendConfig{Mode: coordinator.ModeProcesses, Job: job, Conn: nc, Expect: 2}, wantName: "processes"},
		{name: "processes request", cfg: coordinator.BackendConfig{Mode: coordinator.ModeProcesses, Dispatch: coordinator.DispatchRequest, Job: job, Conn: nc}, wantName: "processes"},
		{name: "processes jetstream", cfg: coordinator.BackendConfig{Mode: coordinator.ModeProcesses, Dispatch: coordinator.DispatchJetStream, Job: job, Conn: nc, JobID: "job-7"}, wantName: "processes/jetstream"},
		{name: "processes without a connection", cfg: coordinator.BackendConfig{Mode: coordinator.ModeProcesses, Job: job}},
		{name: "unknown dispatch", cfg: coordinator.BackendConfig{Mode: coordinator.ModeProcesses, Dispatch: "carrier-pigeon", Job: job, Conn: nc}},
		{name: "unknown mode", cfg: coordinator.BackendConfig{Mode: "threads", Job: job}},
		{name: "no mode", cfg: coordinator.BackendConfig{Job: job}},
		{name: "no lanes", cfg: coordinator.BackendConfig{Mode: coordinator.ModeGoroutines}},
		{name: "bad job id", cfg: coordinator.BackendConfig{Mode: coordinator.ModeProcesses, Dispatch: coordinator.DispatchJetStream, Job: job, Conn: nc, JobID: "a b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := coordinator.NewBackend(tt.cfg)
			if tt.wantName == "" {
				if !errors.Is(err, coordinator.ErrInvalidConfig) {
					t.Fatalf("err = %v, want ErrInvalidConfig", err)
				}
				if b != nil {
					t.Errorf("backend = %#v, want nil with the error", b)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := b.Name(); got != tt.wantName {
				t.Errorf("Name() = %q, want %q", got, tt.wantName)
			}
			if tt.workers > 0 {
				if got := b.(coordinator.WorkerCounter).WorkerCount(); got != tt.workers {
					t.Errorf("WorkerCount() = %d, want %d", got, tt.workers)
				}
			}
			if r, ok := b.(coordinator.Resumable); ok && r.JobID() != tt.cfg.JobID {
				t.Errorf("JobID() = %q, want %q", r.JobID(), tt.cfg.JobID)
			}
		})
	}
}
