//go:build linux

package worker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ferrylab/ferry/internal/natstest"
	"github.com/ferrylab/ferry/proto"
	"github.com/ferrylab/ferry/shm"
	"github.com/ferrylab/ferry/worker"
	"golang.org/x/sys/unix"
)

// shmWorker runs an in-process worker with a shared-memory plane whose
// coordinator end the test plays: it returns the region (mapped here too)
// and the raw socket, after reading the worker's hello.
func shmWorker(t *testing.T, g shm.Geometry) (*shm.Region, *os.File) {
	t.Helper()
	_, url := natstest.NewServer(t)
	region, err := shm.NewRegion(g)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(int(region.File().Fd()))
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs, err := shm.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{URL: url, Shm: &worker.ShmConfig{Region: os.NewFile(uintptr(fd), "memfd"), Socket: theirs, Geometry: g}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		// A stopping worker says bye and waits for the ack; it is the
		// coordinator's promise that nothing more comes.
		if d := recvDesc(t, mine); d.Kind != shm.KindBye {
			t.Errorf("stopping worker sent %+v, want a bye", d)
		}
		mine.Write((&shm.Desc{Kind: shm.KindByeAck}).Append(nil))
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("worker run: %v", err)
		}
		mine.Close()
		region.Unmap()
	})
	if d := recvDesc(t, mine); d.Kind != shm.KindHello || d.ID == "" {
		t.Fatalf("first datagram %+v, want a hello with the worker's ID", d)
	}
	return region, mine
}

func recvDesc(t *testing.T, f *os.File) shm.Desc {
	t.Helper()
	f.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, shm.MaxPacket)
	n, err := f.Read(buf)
	if err != nil {
		t.Fatalf("read descriptor: %v", err)
	}
	var d shm.Desc
	if err := shm.Parse(buf[:n], &d); err != nil {
		t.Fatalf("worker sent a bad descriptor: %v", err)
	}
	return d
}

// TestShmHostileDescriptors: descriptors that do not parse, name slots
// outside the region or point the wrong way are dropped; a batch that does
// not decode or names an unknown codec is answered with an error
// descriptor carrying its code; the worker then serves a real batch.
func TestShmHostileDescriptors(t *testing.T) {
	g := shm.Geometry{Pairs: 2, SlotSize: 64 << 10}
	region, sock := shmWorker(t, g)
	send := func(d shm.Desc) {
		if _, err := sock.Write(d.Append(nil)); err != nil {
			t.Fatal(err)
		}
	}
	// Dropped without a reply.
	for _, p := range [][]byte{[]byte("junk"), make([]byte, 40)} {
		sock.Write(p)
	}
	send(shm.Desc{Kind: shm.KindBatch, Pair: 5, Offset: 5 * 2 * 65536, Length: 10})
	send(shm.Desc{Kind: shm.KindBatch, Pair: 0, Offset: g.ResultOffset(0), Length: 10})
	send(shm.Desc{Kind: shm.KindBatch, Pair: 0, Offset: 0, Length: 1 << 30})
	send(shm.Desc{Kind: shm.KindResult, Pair: 0, Offset: g.ResultOffset(0)})

	// Answered with errors.
	copy(region.Request(0)[:4:4], "junk")
	send(shm.Desc{Kind: shm.KindBatch, Pair: 0, Offset: 0, Length: 4, BatchID: 1})
	if d := recvDesc(t, sock); d.Kind != shm.KindError || d.Code != 400 || d.BatchID != 1 {
		t.Errorf("undecodable batch: reply %+v, want a 400 error for batch 1", d)
	}
	send(shm.Desc{Kind: shm.KindBatch, Codec: 200, Pair: 1, Offset: g.RequestOffset(1), Length: 4, BatchID: 2})
	if d := recvDesc(t, sock); d.Kind != shm.KindError || d.Code != 400 || d.BatchID != 2 {
		t.Errorf("unknown codec: reply %+v, want a 400 error for batch 2", d)
	} else if msg := string(region.Bytes(d.Offset, d.Length)); !strings.Contains(msg, "codec") {
		t.Errorf("error message %q does not name the codec", msg)
	}

	// A real batch.
	codec, _ := proto.NewCodec(proto.CodecPacked, proto.Limits{})
	b := proto.Batch{ID: 3, Attempt: 1, Token: proto.Token{7}, Workload: "embed", Docs: []string{"hello world", "again"}}
	enc, _ := codec.AppendBatch(region.Request(1), &b)
	send(shm.Desc{Kind: shm.KindBatch, Pair: 1, Offset: g.RequestOffset(1), Length: uint32(len(enc)), BatchID: 3, Attempt: 1, Token: b.Token})
	d := recvDesc(t, sock)
	if d.Kind != shm.KindResult || d.Token != b.Token || d.Offset != g.ResultOffset(1) {
		t.Fatalf("reply %+v, want batch 3's result in pair 1's result slot", d)
	}
	var res proto.Result
	if err := codec.DecodeResult(region.Bytes(d.Offset, d.Length), &res); err != nil {
		t.Fatal(err)
	}
	if res.BatchID != 3 || res.Token != b.Token || res.Out.Dim == 0 || len(res.Out.Vecs) != 2*res.Out.Dim {
		t.Errorf("result %+v is not batch 3's two embeddings", res)
	}
	if d.Compute <= 0 {
		t.Errorf("reply carries no compute time")
	}
}

// A leaked FERRY_SHM naming descriptors that are not a region and a
// socket is refused without touching them.
func TestShmFromEnvRefusesOtherFiles(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Setenv(worker.EnvShm, fmt.Sprintf("%d,%d,2,65536", f.Fd(), f.Fd()+1000))
	if c, err := worker.ShmFromEnv(); err == nil || c != nil {
		t.Fatalf("ShmFromEnv = %v, %v; want an error", c, err)
	}
	if _, err := f.Write([]byte("still open")); err != nil {
		t.Errorf("the named file was closed: %v", err)
	}
}
