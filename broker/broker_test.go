package broker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/internal/natstest"
)

func TestClusterRoutesMessagesBetweenNodes(t *testing.T) {
	a := natstest.NewBroker(t, broker.Options{ServerName: "a", Cluster: broker.Cluster{Port: -1}})
	route := fmt.Sprintf("nats-route://%s", a.Server().ClusterAddr())
	// b seeds its routes with a; a learns b from the connection.
	b := natstest.NewBroker(t, broker.Options{ServerName: "b", Cluster: broker.Cluster{Port: -1, Routes: []string{route}}})

	deadline := time.Now().Add(10 * time.Second)
	for a.Server().NumRoutes() == 0 || b.Server().NumRoutes() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no route between a and b after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, want := a.Server().ClusterName(), "ferry"; got != want {
		t.Errorf("cluster name = %q, want %q", got, want)
	}

	sub := natstest.Connect(t, b.URL())
	s, err := sub.SubscribeSync("ferry.test")
	if err != nil {
		t.Fatal(err)
	}
	sub.Flush()
	pub := natstest.Connect(t, a.URL())
	// Interest propagates over the route asynchronously: publish until it lands.
	for {
		if err := pub.Publish("ferry.test", []byte("hi")); err != nil {
			t.Fatal(err)
		}
		m, err := s.NextMsg(50 * time.Millisecond)
		if err == nil {
			if got := string(m.Data); got != "hi" {
				t.Fatalf("got %q", got)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("message published on a never reached a subscriber on b: %v", err)
		}
	}
}

func TestStandaloneHasNoCluster(t *testing.T) {
	b := natstest.NewBroker(t, broker.Options{})
	if addr := b.Server().ClusterAddr(); addr != nil {
		t.Errorf("standalone broker listens for routes on %v", addr)
	}
}
