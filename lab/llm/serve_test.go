package llm

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// A client that sends half a request, headers or body, is cut off after
// the read timeouts instead of holding its connection (and its goroutine)
// forever.
func TestServeMockCutsSlowClients(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- serveMock(ctx, "127.0.0.1:0", MockConfig{}, func(a string) { addrc <- a }, mockTimeouts{header: 200 * time.Millisecond, read: 300 * time.Millisecond})
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("serveMock: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveMock: %v", err)
		}
	})
	for name, partial := range map[string]string{
		"headers": "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n",
		"body":    "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\"",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := fmt.Fprint(c, partial); err != nil {
				t.Fatal(err)
			}
			// Only a bound for the failure case: the server closes long before.
			_ = c.SetReadDeadline(time.Now().Add(time.Minute))
			_, err = io.ReadAll(c)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the server still holds a connection with half a request (%s) after a minute", name)
			}
		})
	}
}
