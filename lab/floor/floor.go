// Package floor measures the floor under ferry's wire: the round trip of
// a raw NATS echo (a plain subscriber answering each request with its own
// bytes) next to ferry's own per-batch round trip through a worker whose
// workload does nothing (noop), on the same connection, for a range of
// payload sizes, so a report can say how far ferry sits above what NATS
// itself costs.
//
// It runs no jobs (coordinator does) and starts no processes: `ferry bench
// transport` and `ferry run` spawn the echo responder (`ferry echo`, which
// calls Echo) and the worker as separate OS processes.
package floor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferrylab/ferry/internal/quantile"
	"github.com/nats-io/nats.go"
)

// ErrNoEcho is returned when no echo responder answers in time.
var ErrNoEcho = errors.New("floor: no echo responder")

// Echo answers every request on subject with the request's own bytes until
// ctx is done, then drains its subscription. It is the cheapest responder
// NATS allows: one plain subscription, no headers, no decoding.
func Echo(ctx context.Context, nc *nats.Conn, subject string) error {
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond(m.Data) })
	if err != nil {
		return fmt.Errorf("transport: subscribe %s: %w", subject, err)
	}
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("transport: subscribe %s: %w", subject, err)
	}
	<-ctx.Done()
	return sub.Drain()
}

// Sample summarises round-trip times; P50 and P99 are nearest-rank
// quantiles (internal/quantile).
type Sample struct {
	P50, P99, Mean time.Duration
	N              int
}

// times gathers round-trip times for a Sample.
type times = quantile.Stream[time.Duration]

func summarise(t *times) Sample {
	if t.N() == 0 {
		return Sample{}
	}
	return Sample{P50: t.Quantile(0.50), P99: t.Quantile(0.99), Mean: t.Mean(), N: int(t.N())}
}

// Raw is a requester for an echo responder on the same footing as ferry's
// coordinator.Link: its own reply subscription and a fixed reply subject,
// so the floor is what NATS costs, not what nats.go's Request adds.
// A Raw is used by one goroutine at a time.
type Raw struct {
	nc      *nats.Conn
	subject string
	reply   string
	sub     *nats.Subscription
	replies chan *nats.Msg
	timer   *time.Timer
}

// NewRaw opens a requester for the echo responder on subject.
func NewRaw(nc *nats.Conn, subject string) (*Raw, error) {
	r := &Raw{nc: nc, subject: subject, reply: nc.NewInbox(), replies: make(chan *nats.Msg, 8), timer: time.NewTimer(time.Hour)}
	r.timer.Stop()
	sub, err := nc.ChanSubscribe(r.reply, r.replies)
	if err != nil {
		return nil, fmt.Errorf("transport: subscribe %s: %w", r.reply, err)
	}
	r.sub = sub
	return r, nil
}

// Close ends the reply subscription.
func (r *Raw) Close() error { return r.sub.Unsubscribe() }

// RoundTrip sends data and waits for the echo. A timed-out request's late
// echo would be taken for the next one's, so after an error the Raw must
// not be used again.
func (r *Raw) RoundTrip(ctx context.Context, data []byte, timeout time.Duration) (*nats.Msg, error) {
	if err := r.nc.PublishMsg(&nats.Msg{Subject: r.subject, Reply: r.reply, Data: data}); err != nil {
		return nil, err
	}
	r.timer.Reset(timeout)
	defer r.timer.Stop()
	select {
	case m := <-r.replies:
		if len(m.Data) == 0 && m.Header.Get("Status") == "503" { // no responders
			return nil, fmt.Errorf("%w on %s", ErrNoEcho, r.subject)
		}
		return m, nil
	case <-r.timer.C:
		return nil, fmt.Errorf("%w on %s within %s", ErrNoEcho, r.subject, timeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// WaitForEcho polls the echo subject until a responder answers or within
// passes: a spawned responder needs a moment to connect.
func WaitForEcho(ctx context.Context, nc *nats.Conn, subject string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		_, err := nc.Request(subject, []byte("ping"), 250*time.Millisecond)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w on %s within %s: %v", ErrNoEcho, subject, within, err)
		}
		if errors.Is(err, nats.ErrNoResponders) {
			select { // not subscribed yet; nats answered at once
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}
