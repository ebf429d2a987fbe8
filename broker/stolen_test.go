package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/ferrylab/ferry/broker"
	"github.com/ferrylab/ferry/internal/natsconn"
	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Each row of TestStolenCredentials proves one sentence of docs/auth.md,
// "What a stolen credential can do": two worker logins (w1, w2), two
// coordinator logins (c1, c2) and an admin who watches, on a broker with
// JetStream.
const (
	may    = true
	mayNot = false
)

type stolenRow struct {
	name    string
	who     string // login doing it: w1 or c1
	op      string // pub, sub, or qsub (subscribe in queue group ferry-workers)
	subject string
	allowed bool
}

var stolenRows = []stolenRow{
	// A worker credential reads the batches sent to its own login, no others.
	{"worker reads its own batches", "w1", "sub", "ferry.work.w1.>", may},
	{"worker reads another login's batches", "w1", "sub", "ferry.work.w2.>", mayNot},
	{"worker reads every batch", "w1", "sub", "ferry.work.>", mayNot},
	{"worker takes a share of the any-worker queue", "w1", "qsub", "ferry.work.any", may},
	{"worker copies the any-worker queue", "w1", "sub", "ferry.work.any", mayNot},
	// It answers only batches sent to its login.
	{"worker answers its own batches", "w1", "pub", "_INBOX.c1.to.w1.x.0", may},
	{"worker answers another login's batches", "w1", "pub", "_INBOX.c1.to.w2.x.0", mayNot},
	{"worker publishes to a coordinator's inbox", "w1", "pub", "_INBOX.c1.x", mayNot},
	// It sends no work and reads no inbox but its own.
	{"worker sends a batch", "w1", "pub", "ferry.work.w2.x", mayNot},
	{"worker sends to the any-worker queue", "w1", "pub", "ferry.work.any", mayNot},
	{"worker queues a jetstream batch", "w1", "pub", "ferry.batch.J.0-1", mayNot},
	{"worker pings the fleet", "w1", "pub", "$SRV.PING.ferry-worker", mayNot},
	{"worker reads its own inbox", "w1", "sub", "_INBOX.w1.>", may},
	{"worker reads every inbox", "w1", "sub", "_INBOX.>", mayNot},
	{"worker reads a coordinator's replies", "w1", "sub", "_INBOX.c1.>", mayNot},
	{"worker reads another worker's inbox", "w1", "sub", "_INBOX.w2.>", mayNot},
	{"worker answers discovery", "w1", "sub", "$SRV.INFO.ferry-worker", may},
	// JetStream: it acks only what is delivered to it, publishes results, manages nothing.
	{"worker acks another worker's batch", "w1", "pub", "$JS.ACK.FERRY_BATCHES.ferry-workers.1.1.1.1.0", mayNot},
	{"worker publishes a result", "w1", "pub", "ferry.result.J.0-1", may},
	{"worker reads the results stream", "w1", "pub", "$JS.API.DIRECT.GET.FERRY_RESULTS.ferry.result.J.0-1", mayNot},
	{"worker purges a stream", "w1", "pub", "$JS.API.STREAM.PURGE.FERRY_BATCHES", mayNot},
	{"worker subscribes elsewhere", "w1", "sub", "orders.>", mayNot},
	{"worker publishes elsewhere", "w1", "pub", "orders.new", mayNot},
	// A coordinator credential sends work and reads only its own replies.
	{"coordinator sends a batch", "c1", "pub", "ferry.work.w1.x", may},
	{"coordinator queues a jetstream batch", "c1", "pub", "ferry.batch.J.0-1", may},
	{"coordinator pings the fleet", "c1", "pub", "$SRV.PING.ferry-worker", may},
	{"coordinator reads its own replies", "c1", "sub", "_INBOX.c1.>", may},
	{"coordinator reads every inbox", "c1", "sub", "_INBOX.>", mayNot},
	{"coordinator reads another coordinator's replies", "c1", "sub", "_INBOX.c2.>", mayNot},
	{"coordinator reads a worker's inbox", "c1", "sub", "_INBOX.w1.>", mayNot},
	{"coordinator serves work", "c1", "sub", "ferry.work.>", mayNot},
	{"coordinator answers discovery", "c1", "sub", "$SRV.INFO.ferry-worker", mayNot},
	{"coordinator forges a reply", "c1", "pub", "_INBOX.c2.to.w1.x.0", mayNot},
	{"coordinator publishes a result", "c1", "pub", "ferry.result.J.0-1", mayNot},
	// Its echo (the transport floor) logs in as it, on its own echo subjects.
	{"coordinator serves its own echo", "c1", "sub", "ferry.echo.c1.>", may},
	{"coordinator sends to its own echo", "c1", "pub", "ferry.echo.c1.x", may},
	{"coordinator serves another coordinator's echo", "c1", "sub", "ferry.echo.c2.>", mayNot},
	{"coordinator serves every echo", "c1", "sub", "ferry.echo.>", mayNot},
	{"coordinator sends to another coordinator's echo", "c1", "pub", "ferry.echo.c2.x", mayNot},
	{"coordinator answers what it was not sent", "c1", "pub", "_INBOX.c2.x", mayNot},
	{"worker serves a coordinator's echo", "w1", "sub", "ferry.echo.c1.>", mayNot},
	{"worker sends to a coordinator's echo", "w1", "pub", "ferry.echo.c1.x", mayNot},
	{"coordinator purges ferry's streams", "c1", "pub", "$JS.API.STREAM.PURGE.FERRY_RESULTS", may},
	{"coordinator reads any job's stored results", "c1", "pub", "$JS.API.DIRECT.GET.FERRY_RESULTS.ferry.result.J.0-1", may},
	{"coordinator touches another stream", "c1", "pub", "$JS.API.STREAM.DELETE.ORDERS", mayNot},
}

func stolenUsers() []broker.User {
	return []broker.User{
		{Name: "w1", Password: workerPW, Role: broker.RoleWorker},
		{Name: "w2", Password: workerPW, Role: broker.RoleWorker},
		{Name: "c1", Password: coordPW, Role: broker.RoleCoordinator},
		{Name: "c2", Password: coordPW, Role: broker.RoleCoordinator},
		{Name: "a", Password: adminPW, Role: broker.RoleAdmin},
	}
}

func TestStolenCredentials(t *testing.T) {
	b := natstest.NewBroker(t, broker.Options{Users: stolenUsers(), JetStream: true, StoreDir: t.TempDir()})
	login := func(name string) natsconn.Auth {
		pw := map[byte]string{'w': workerPW, 'c': coordPW, 'a': adminPW}[name[0]]
		return natsconn.Auth{User: name, Password: pw}
	}
	admin := mustDial(t, b.URL(), login("a"))
	for _, row := range stolenRows {
		t.Run(row.name, func(t *testing.T) {
			c := mustDial(t, b.URL(), login(row.who))
			switch {
			case !row.allowed && row.op == "pub":
				if err := c.Publish(row.subject, []byte("x")); err != nil {
					t.Fatal(err)
				}
				c.violation(t, row.subject)
			case !row.allowed:
				if _, err := subscribe(c, row); err != nil {
					t.Fatal(err)
				}
				c.violation(t, row.subject)
			case row.op == "pub": // the admin sees it arrive
				sub, err := admin.SubscribeSync(row.subject)
				if err != nil {
					t.Fatal(err)
				}
				defer sub.Unsubscribe()
				if err := admin.Flush(); err != nil {
					t.Fatal(err)
				}
				if err := c.Publish(row.subject, []byte("x")); err != nil {
					t.Fatal(err)
				}
				if _, err := sub.NextMsg(10 * time.Second); err != nil {
					t.Fatalf("%s published to %s, nothing arrived: %v", row.who, row.subject, err)
				}
			default: // it receives what the admin sends
				sub, err := subscribe(c, row)
				if err != nil {
					t.Fatal(err)
				}
				if err := c.Flush(); err != nil {
					t.Fatal(err)
				}
				subject := concrete(row.subject)
				if err := admin.Publish(subject, []byte("x")); err != nil {
					t.Fatal(err)
				}
				if _, err := sub.NextMsg(10 * time.Second); err != nil {
					t.Fatalf("%s subscribed to %s, did not receive %s: %v", row.who, row.subject, subject, err)
				}
			}
		})
	}

	// The floor's echo logs in as the coordinator: it serves the
	// coordinator's echo subject and answers each request once, to the
	// coordinator's own inbox.
	t.Run("coordinator's echo answers it", func(t *testing.T) {
		echo := mustDial(t, b.URL(), login("c1"))
		if _, err := echo.Subscribe("ferry.echo.c1.e", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
			t.Fatal(err)
		}
		if err := echo.Flush(); err != nil {
			t.Fatal(err)
		}
		c, err := natsconn.Connect(b.URL(), "c1", login("c1"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		m, err := c.Request("ferry.echo.c1.e", []byte("ping"), 10*time.Second)
		if err != nil || string(m.Data) != "ping" {
			t.Fatalf("echo request: %v %v", m, err)
		}
	})

	// A worker acks the jetstream batches delivered to it: acks travel as
	// replies to the delivery, the only way a worker may publish to $JS.ACK.
	t.Run("worker acks a batch delivered to it", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ajs, _ := jetstream.New(admin.Conn)
		if _, err := ajs.CreateStream(ctx, jetstream.StreamConfig{Name: "FERRY_BATCHES", Subjects: []string{"ferry.batch.>"}, Retention: jetstream.WorkQueuePolicy}); err != nil {
			t.Fatal(err)
		}
		if _, err := ajs.CreateOrUpdateConsumer(ctx, "FERRY_BATCHES", jetstream.ConsumerConfig{Durable: "ferry-workers", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Fatal(err)
		}
		if _, err := ajs.Publish(ctx, "ferry.batch.J.0-1", []byte("batch")); err != nil {
			t.Fatal(err)
		}
		w := mustDial(t, b.URL(), login("w1"))
		js, _ := jetstream.New(w.Conn)
		cons, err := js.Consumer(ctx, "FERRY_BATCHES", "ferry-workers")
		if err != nil {
			t.Fatal(err)
		}
		m, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.InProgress(); err != nil {
			t.Fatal(err)
		}
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatalf("ack of a batch delivered to w1: %v", err)
		}
	})
}

func subscribe(c *client, row stolenRow) (*nats.Subscription, error) {
	if row.op == "qsub" {
		return c.QueueSubscribeSync(row.subject, "ferry-workers")
	}
	return c.SubscribeSync(row.subject)
}

// concrete turns a subscription subject into one message subject it matches.
func concrete(subject string) string {
	if n := len(subject); n > 1 && subject[n-1] == '>' {
		return subject[:n-1] + "x"
	}
	return subject
}
