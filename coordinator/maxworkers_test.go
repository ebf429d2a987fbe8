package coordinator

import (
	"context"
	"testing"

	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/sink"
)

func TestProcessesMaxWorkersUsesOnlyThatMany(t *testing.T) {
	_, url := natstest.NewServer(t)
	natstest.StartWorkers(t, url, 3)
	nc := natstest.Connect(t, url)
	for _, tc := range []struct {
		name       string
		max, want  int
		expectWait int
	}{
		{"one of three", 1, 1, 1},
		{"two of three", 2, 2, 2},
		{"all", 0, 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Workload: "embed", BatchSize: 20, Workers: tc.expectWait, MaxWorkers: tc.max}
			b, err := NewProcesses(nc, cfg, tc.expectWait, nil)
			if err != nil {
				t.Fatal(err)
			}
			st, err := Run(context.Background(), cfg, corpus.Slice(docs(2000)), b, sink.Discard{})
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Workers; got != tc.want {
				t.Errorf("workers = %d, want %d", got, tc.want)
			}
			if got := len(st.Busy); got > tc.want {
				t.Errorf("%d workers computed batches (%v), want at most %d", got, st.Busy, tc.want)
			}
			if st.Docs != 2000 {
				t.Errorf("docs = %d, want 2000", st.Docs)
			}
		})
	}
}
