package coordinator_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/sink"
)

// plain hides every optional capability of the backend it wraps.
type plain struct{ coordinator.Backend }

type limited struct {
	plain
	max int
}

func (l limited) MaxBatchBytes() int { return l.max }

type unready struct{ plain }

func (unready) Ready(context.Context) error { return errors.New("no workers yet") }

type resumable struct{ plain }

func (resumable) JobID() string  { return "job-1" }
func (resumable) Resumed() int64 { return 5 }

type counted struct{ plain }

func (counted) WorkerCount() int { return 42 }

// TestRunUsesCapabilities checks Run honours each optional capability of a
// backend, and falls back without it.
func TestRunUsesCapabilities(t *testing.T) {
	local, err := coordinator.NewLocal(coordinator.ModeGoroutines, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	base := plain{local}
	tests := []struct {
		name    string
		backend coordinator.Backend
		wantErr string // substring; "" = no error
		check   func(t *testing.T, st *coordinator.Stats)
	}{
		{name: "none", backend: base, check: func(t *testing.T, st *coordinator.Stats) {
			if st.Workers < 1 || st.Workers > 2 || st.Resumed != 0 {
				t.Errorf("workers = %d, resumed = %d; want the lanes that computed (1 or 2) and 0", st.Workers, st.Resumed)
			}
		}},
		{name: "batch limiter", backend: limited{base, 300}, wantErr: "may not exceed 300 bytes"},
		{name: "readier", backend: unready{base}, wantErr: "no workers yet"},
		{name: "resumable", backend: resumable{base}, check: func(t *testing.T, st *coordinator.Stats) {
			if got, want := st.Resumed, int64(5); got != want {
				t.Errorf("resumed = %d, want %d", got, want)
			}
		}},
		{name: "worker counter", backend: counted{base}, check: func(t *testing.T, st *coordinator.Stats) {
			if got, want := st.Workers, 42; got != want {
				t.Errorf("workers = %d, want %d", got, want)
			}
		}},
	}
	in := texts(40)
	in[7] = strings.Repeat("x", 400)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := coordinator.Config{Workload: "embed", BatchSize: 10, Workers: 2}
			st, err := coordinator.Run(context.Background(), cfg, corpus.Slice(in), tt.backend, sink.Discard{})
			if tt.wantErr == "" && err != nil {
				t.Fatalf("error: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
			if st == nil {
				t.Fatal("no stats")
			}
			if got, want := st.Mode, coordinator.ModeGoroutines; got != want {
				t.Errorf("mode = %q, want %q", got, want)
			}
			if tt.check != nil {
				tt.check(t, st)
			}
		})
	}
}
