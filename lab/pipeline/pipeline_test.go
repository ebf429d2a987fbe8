package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/corpus"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/internal/poison"
	"github.com/ferrylab/ferry/lab/llm"
	"github.com/ferrylab/ferry/lab/pipeline"
	"github.com/ferrylab/ferry/worker"
	"github.com/ferrylab/ferry/workload"
)

// texts is n documents of varied length: some with no tokens, most with
// one to four chunks of 16 tokens.
func texts(n int) []string {
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for w := range (i * 13) % 61 {
			fmt.Fprintf(&b, "w%d_%d ", i, w)
		}
		out[i] = b.String()
	}
	return out
}

// chunkParams makes several chunks per document.
var chunkParams = workload.Params{ChunkTokens: 16, ChunkOverlap: 4}

// mockServer runs an llm.Mock on a loopback port until the test ends.
func mockServer(t *testing.T, cfg llm.MockConfig) (*llm.Mock, string) {
	t.Helper()
	m, err := llm.NewMock(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return m, srv.URL
}

func client(t *testing.T, url string, attempts int) *llm.Client {
	t.Helper()
	c, err := llm.NewClient(llm.ClientConfig{URL: url, MaxAttempts: attempts, BaseBackoff: time.Millisecond, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func backend(t *testing.T, mode string) coordinator.Backend {
	t.Helper()
	if mode != coordinator.ModeProcesses {
		b, err := coordinator.NewLocal(mode, 2, "")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	_, url := natstest.NewServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 2 {
		w, err := worker.New(worker.Config{URL: url, Name: fmt.Sprintf("w%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = w.Run(ctx) }()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	nc := natstest.Connect(t, url)
	b, err := coordinator.NewProcesses(nc, coordinator.Config{Workers: 2}, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// expected computes what the pipeline must produce for each document
// without running it: the chunk workload's spans and the mock's replies.
func expected(t *testing.T, m *llm.Mock, list []string, p workload.Params) (summaries []string, chunks int) {
	t.Helper()
	wl, err := workload.New("chunk", p)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range list {
		var out workload.Output
		if err := wl.Process([]string{d}, &out); err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, s := range out.Spans {
			parts = append(parts, m.Reply(pipeline.DefaultPrompt(d[s.Start:s.End])))
		}
		chunks += len(parts)
		summaries = append(summaries, strings.Join(parts, "\n"))
	}
	return summaries, chunks
}

func runPipeline(t *testing.T, cfg pipeline.Config, b coordinator.Backend, c *llm.Client, list []string) (*pipeline.Stats, []pipeline.Doc, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got []pipeline.Doc
	cfg.OnDoc = func(d pipeline.Doc) error { got = append(got, d); return nil }
	st, err := pipeline.Run(ctx, cfg, corpus.Slice(list), b, c)
	return st, got, err
}

func TestModesGiveIdenticalResults(t *testing.T) {
	list := texts(150)
	m, url := mockServer(t, llm.MockConfig{LatencyP50: 2 * time.Millisecond})
	want, chunks := expected(t, m, list, chunkParams)
	var digest string
	for _, mode := range []string{coordinator.ModeSerial, coordinator.ModeGoroutines, coordinator.ModeProcesses} {
		t.Run(mode, func(t *testing.T) {
			cfg := pipeline.Config{Chunk: coordinator.Config{BatchSize: 7, Params: chunkParams}, Concurrency: 32, MergeDim: 16}
			st, got, err := runPipeline(t, cfg, backend(t, mode), client(t, url, 1), list)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(list) {
				t.Fatalf("OnDoc got %d documents, want %d", len(got), len(list))
			}
			for i, d := range got {
				if d.Index != int64(i) || d.Err != nil || d.Summary != want[i] {
					t.Fatalf("doc %d = {index %d, err %v, summary %.40q}, want summary %.40q", i, d.Index, d.Err, d.Summary, want[i])
				}
			}
			if st.Docs != int64(len(list)) || st.Chunks != int64(chunks) || st.LLM.Calls != int64(chunks) || st.Failed != 0 {
				t.Errorf("docs %d chunks %d calls %d failed %d; want %d, %d, %d, 0", st.Docs, st.Chunks, st.LLM.Calls, st.Failed, len(list), chunks, chunks)
			}
			if st.Mode != mode {
				t.Errorf("mode = %q", st.Mode)
			}
			if digest == "" {
				digest = st.Digest
			} else if st.Digest != digest {
				t.Errorf("digest %s differs from serial's %s", st.Digest, digest)
			}
			checkStages(t, st, int64(len(list)), int64(chunks))
		})
	}
}

// checkStages checks the stage accounting is consistent; timings are not
// asserted beyond their invariants.
func checkStages(t *testing.T, st *pipeline.Stats, docs, calls int64) {
	t.Helper()
	if len(st.Stages) != 3 {
		t.Fatalf("stages = %+v", st.Stages)
	}
	for i, want := range []struct {
		name  string
		items int64
	}{{"chunk", docs}, {"llm", calls}, {"merge", docs}} {
		s := st.Stages[i]
		if s.Name != want.name || s.Items != want.items {
			t.Errorf("stage %d = %s with %d items, want %s with %d", i, s.Name, s.Items, want.name, want.items)
		}
		if s.Active <= 0 || s.Active > st.Wall || s.End > st.Wall || s.First > s.End {
			t.Errorf("stage %s: active %v first %v end %v, wall %v", s.Name, s.Active, s.First, s.End, st.Wall)
		}
	}
	if st.Both > min(st.CPUActive, st.IOActive) || st.Overlap() <= 0 || st.Overlap() > 1 {
		t.Errorf("both %v cpu %v io %v overlap %v", st.Both, st.CPUActive, st.IOActive, st.Overlap())
	}
	// Streamed: the LLM stage starts long before the chunk stage ends.
	if st.Stages[1].First >= st.Stages[0].End {
		t.Errorf("llm stage started at %v, after the chunk stage ended at %v", st.Stages[1].First, st.Stages[0].End)
	}
}

func TestTinyWindowStillFinishes(t *testing.T) {
	list := texts(60)
	m, url := mockServer(t, llm.MockConfig{LatencyP50: time.Millisecond})
	maxChunks := 0
	for _, d := range list {
		_, n := expected(t, m, []string{d}, chunkParams)
		maxChunks = max(maxChunks, n)
	}
	var digest string
	for _, tc := range []struct {
		name                string
		window, concurrency int
	}{
		{"window=1/concurrency=1", 1, 1},
		{"window=2/concurrency=64", 2, 64},
		{"default", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := pipeline.Config{Chunk: coordinator.Config{BatchSize: 5, Params: chunkParams}, Window: tc.window, Concurrency: tc.concurrency, MergeDim: 8}
			st, got, err := runPipeline(t, cfg, backend(t, coordinator.ModeGoroutines), client(t, url, 1), list)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(list) {
				t.Fatalf("got %d documents", len(got))
			}
			if tc.concurrency > 0 && st.LLM.InFlightPeak > int64(tc.concurrency) {
				t.Errorf("in-flight peak %d > concurrency %d", st.LLM.InFlightPeak, tc.concurrency)
			}
			// The window bounds the documents downstream of the chunk stage,
			// so also the calls in flight, whatever the concurrency.
			if tc.window > 0 && st.LLM.InFlightPeak > int64(tc.window*maxChunks) {
				t.Errorf("in-flight peak %d > window %d x %d chunks per document", st.LLM.InFlightPeak, tc.window, maxChunks)
			}
			if digest == "" {
				digest = st.Digest
			} else if st.Digest != digest {
				t.Errorf("digest differs with window %d", tc.window)
			}
		})
	}
}

func TestBadEndpointsFailDocumentsNotTheRun(t *testing.T) {
	list := texts(40)
	refused := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr
	}
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"choices": [ {"message": nope`))
	}))
	t.Cleanup(garbage.Close)
	_, storm := mockServer(t, llm.MockConfig{ErrorRate: 1})
	_, small := mockServer(t, llm.MockConfig{MaxBodyBytes: 2000})
	list[5] = strings.Repeat("x", 3000) // one token, one chunk, too big for small
	empty := int64(0)                   // documents without tokens: no calls, nothing to fail
	for _, d := range list {
		if strings.TrimSpace(d) == "" {
			empty++
		}
	}

	for _, tc := range []struct {
		name, url, kind string
		someOK          bool
	}{
		{"connection refused", refused(), llm.KindRefused, false},
		{"garbage JSON", garbage.URL, llm.KindBadResponse, false},
		{"500 storm", storm, "http_500", false},
		{"body over the mock's limit", small, "http_413", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := pipeline.Config{Chunk: coordinator.Config{BatchSize: 4, Params: chunkParams}, Concurrency: 8, MergeDim: 8}
			st, got, err := runPipeline(t, cfg, backend(t, coordinator.ModeGoroutines), client(t, tc.url, 2), list)
			if !errors.Is(err, pipeline.ErrDocsFailed) {
				t.Fatalf("err = %v, want ErrDocsFailed", err)
			}
			if len(got) != len(list) {
				t.Fatalf("OnDoc got %d documents, want every one of %d", len(got), len(list))
			}
			if st.Tally.ByKind[tc.kind] == 0 {
				t.Errorf("errors by kind = %v, want some %s", st.Tally.ByKind, tc.kind)
			}
			if st.Failed == 0 || st.Failed+st.Docs != int64(len(list)) || (st.Docs > empty) != tc.someOK {
				t.Errorf("failed %d docs %d of %d (%d without tokens); want more OK: %v", st.Failed, st.Docs, len(list), empty, tc.someOK)
			}
			if len(st.Failures) == 0 || !strings.Contains(st.Failures[0].Error, "chunk ") {
				t.Errorf("failures = %v", st.Failures)
			}
		})
	}
}

func TestPoisonDocumentFailsAlone(t *testing.T) {
	list := texts(50)
	bad := 17
	_, url := mockServer(t, llm.MockConfig{})
	if err := poison.Register(); err != nil {
		t.Fatal(err)
	}
	p := chunkParams
	p.Args = poison.Args(list[bad], "chunk")
	cfg := pipeline.Config{Chunk: coordinator.Config{BatchSize: 10, Params: p, MaxAttempts: 1}, ChunkWorkload: poison.Name, Concurrency: 8, MergeDim: 8}
	st, got, err := runPipeline(t, cfg, backend(t, coordinator.ModeGoroutines), client(t, url, 1), list)
	if !errors.Is(err, pipeline.ErrDocsFailed) {
		t.Fatalf("err = %v, want ErrDocsFailed", err)
	}
	if st.Failed != 1 || st.Docs != int64(len(list)-1) {
		t.Errorf("failed %d, docs %d", st.Failed, st.Docs)
	}
	if got[bad].Err == nil || !strings.Contains(st.Failures[0].Error, "panic") {
		t.Errorf("doc %d err %v, failures %v", bad, got[bad].Err, st.Failures)
	}
}

func TestCancelEndsPromptly(t *testing.T) {
	list := texts(400)
	m, url := mockServer(t, llm.MockConfig{LatencyP50: time.Hour})
	b, c := backend(t, coordinator.ModeGoroutines), client(t, url, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := pipeline.Config{Chunk: coordinator.Config{BatchSize: 10, Params: chunkParams}, Concurrency: 16, MergeDim: 8}
	type result struct {
		st  *pipeline.Stats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := pipeline.Run(ctx, cfg, corpus.Slice(list), b, c)
		done <- result{st, err}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for m.Stats().Requests < 16 { // every call slot is waiting on the mock
		if time.Now().After(deadline) {
			t.Fatal("calls never reached the mock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case r := <-done:
		if !errors.Is(r.err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", r.err)
		}
		if r.st == nil || r.st.LLM.Calls == 0 {
			t.Errorf("stats on interrupt = %+v, want the canceled calls counted", r.st)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestOnDocErrorEndsRun(t *testing.T) {
	list := texts(200)
	_, url := mockServer(t, llm.MockConfig{})
	boom := errors.New("disk full")
	cfg := pipeline.Config{Chunk: coordinator.Config{BatchSize: 10, Params: chunkParams}, Concurrency: 4, Window: 2, MergeDim: 8,
		OnDoc: func(d pipeline.Doc) error {
			if d.Index == 3 {
				return boom
			}
			return nil
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := pipeline.Run(ctx, cfg, corpus.Slice(list), backend(t, coordinator.ModeGoroutines), client(t, url, 1))
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want %v", err, boom)
	}
}

// A Record's JSON is ferry pipeline --out's line format; the bytes are pinned.
func TestDocRecord(t *testing.T) {
	tests := []struct {
		name string
		doc  pipeline.Doc
		want string
	}{
		{name: "merged", doc: pipeline.Doc{Index: 3, Chunks: 2, Summary: "a <b>\nc"},
			want: `{"index":3,"chunks":2,"summary":"a \u003cb\u003e\nc"}`},
		{name: "failed", doc: pipeline.Doc{Index: 4, Err: errors.New("chunk 0: boom")},
			want: `{"index":4,"chunks":0,"error":"chunk 0: boom"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.doc.Record())
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b); got != tt.want {
				t.Errorf("json = %s, want %s", got, tt.want)
			}
		})
	}
}
