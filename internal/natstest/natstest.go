// Package natstest starts real embedded NATS servers for tests, in the shape
// of net/http/httptest: one server per test, on a random loopback port, shut
// down by t.Cleanup.
package natstest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/worker"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// NewServer starts a broker for tb and returns it with its client URL.
func NewServer(tb testing.TB) (*server.Server, string) {
	tb.Helper()
	b := NewBroker(tb, broker.Options{})
	return b.Server(), b.URL()
}

// NewBroker starts a broker with o (Port defaults to random) for tb.
func NewBroker(tb testing.TB, o broker.Options) *broker.Broker {
	tb.Helper()
	b, err := broker.Start(context.Background(), o)
	if err != nil {
		tb.Fatalf("start nats: %v", err)
	}
	tb.Cleanup(b.Shutdown)
	return b
}

// Connect opens a client connection to url, closed by t.Cleanup.
func Connect(tb testing.TB, url string, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		tb.Fatalf("connect %s: %v", url, err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// StartWorkers runs n in-process workers (named w0, w1, ...) against url
// until tb ends; cleanup stops them and waits for them to return.
func StartWorkers(tb testing.TB, url string, n int) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	tb.Cleanup(func() { cancel(); wg.Wait() })
	for i := range n {
		w, err := worker.New(worker.Config{URL: url, Name: fmt.Sprintf("w%d", i)})
		if err != nil {
			tb.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = w.Run(ctx) }()
	}
}
