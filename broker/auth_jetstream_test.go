package broker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/worker"
)

// TestAuthorisedJetStreamFleet: with dispatch=jetstream the worker and
// coordinator roles can run a job through ferry's streams, and still
// cannot do each other's part: a worker cannot queue batches, a
// coordinator cannot pull them.
func TestAuthorisedJetStreamFleet(t *testing.T) {
	b := natstest.NewBroker(t, broker.Options{Users: fleetUsers(), JetStream: true, StoreDir: t.TempDir()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	w, err := worker.New(worker.Config{URL: b.URL(), Auth: natsconn.Auth{User: "w", Password: workerPW}, JetStream: true})
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("worker: %v", err)
		}
	})

	cfg := coordinator.Config{Workload: "embed", BatchSize: 25, Workers: 1, BatchTimeout: 5 * time.Second}
	serial, err := coordinator.NewLocal(coordinator.ModeSerial, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	want := runJob(t, cfg, serial)
	c := mustDial(t, b.URL(), natsconn.Auth{User: "c", Password: coordPW})
	js, err := coordinator.NewJetStream(c.Conn, cfg, "authjob", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := runJob(t, cfg, js)
	if got.Digest != want.Digest || got.Docs != want.Docs {
		t.Errorf("jetstream: %d docs digest %s; serial: %d docs digest %s", got.Docs, got.Digest, want.Docs, want.Digest)
	}
	select {
	case err := <-c.errs:
		t.Errorf("coordinator saw %v", err)
	default:
	}

	wc := mustDial(t, b.URL(), natsconn.Auth{User: "w", Password: workerPW})
	for _, tc := range []struct {
		name    string
		c       *client
		subject string
	}{
		{"worker queues a batch", wc, proto.BatchSubject("authjob", 0, 1)},
		{"worker manages streams", wc, "$JS.API.STREAM.PURGE." + proto.ResultStream},
		{"coordinator pulls a batch", c, "$JS.API.CONSUMER.MSG.NEXT." + proto.BatchStream + "." + proto.JobConsumer("authjob")},
		{"worker deletes a job's consumer", wc, "$JS.API.CONSUMER.DELETE." + proto.BatchStream + "." + proto.JobConsumer("authjob")},
		{"coordinator touches another stream", c, "$JS.API.STREAM.DELETE.ORDERS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.c.Publish(tc.subject, nil); err != nil {
				t.Fatal(err)
			}
			tc.c.violation(t, tc.subject)
		})
	}
}
