package proto

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ferrylab/ferry/workload"
)

func TestExecFramesRoundTrip(t *testing.T) {
	b := batchOf([]string{"one", "two words", ""})
	b.Params.Args = longArgs
	var pipe bytes.Buffer
	req, err := AppendExecRequest(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	res := embedResult(3, 4)
	res.Out.Ends, res.Out.Data = []uint32{1, 1, 3}, []byte("xyz") // both shapes of bytes cannot mix: drop stride
	res.Out.Stride = 0
	reply, err := AppendExecReply(nil, 1234*time.Microsecond, res)
	if err != nil {
		t.Fatal(err)
	}
	pipe.Write(req)
	pipe.Write(reply)

	frame, err := ReadFrame(&pipe, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got Batch
	if err := DecodeExecRequest(frame, &got, Limits{}); err != nil {
		t.Fatal(err)
	}
	if got.ID != b.ID || got.Params != b.Params || strings.Join(got.Docs, "|") != strings.Join(b.Docs, "|") {
		t.Errorf("request = %+v, want %+v", got, b)
	}
	frame, err = ReadFrame(&pipe, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var r Result
	compute, err := DecodeExecReply(frame, &r)
	if err != nil {
		t.Fatal(err)
	}
	if compute != 1234*time.Microsecond || !sameResult(r, *res) {
		t.Errorf("reply = %v, %+v; want %v, %+v", compute, r, 1234*time.Microsecond, res)
	}
	if _, err := ReadFrame(&pipe, nil, 0); !errors.Is(err, io.EOF) {
		t.Errorf("after the last frame: %v, want io.EOF", err)
	}
}

func TestReadFrameRefusesBeforeAllocating(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"over the limit", []byte{0, 0, 1, 0, 1, 2}, 255, ErrLimit},
		{"4 GiB declared", []byte{0xff, 0xff, 0xff, 0xff}, 0, ErrLimit},
		{"short header", []byte{0, 0}, 0, ErrTruncated},
		{"short payload", []byte{0, 0, 0, 5, 1, 2}, 0, ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf, err := ReadFrame(bytes.NewReader(tc.in), nil, tc.max)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if cap(buf) > 16 {
				t.Errorf("allocated %d bytes for a refused frame", cap(buf))
			}
		})
	}
}

func TestDecodeExecReplyRejects(t *testing.T) {
	good, _ := AppendExecReply(nil, time.Millisecond, embedResult(1, 4))
	good = good[frameHeader:]
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"not an array", []byte{0x80}},
		{"three fields", append([]byte{0x93}, good[1:]...)},
		{"negative compute", append([]byte{0x92, 0xff}, good[2:]...)},
		{"compute not a number", append([]byte{0x92, 0xa0}, good[2:]...)},
		{"truncated result", good[:len(good)-1]},
		{"trailing bytes", append(append([]byte{}, good...), 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Result
			if _, err := DecodeExecReply(tc.in, &r); err == nil {
				t.Fatalf("accepted %x", tc.in)
			}
		})
	}
}

func TestPipeStageIsAFourthField(t *testing.T) {
	v := string(AppendPipeStage(AppendStages(nil, 1, 2, 3), 4))
	if v != "1 2 3 4" {
		t.Fatalf("stages = %q", v)
	}
	if d, c, e := ParseStages(v); d != 1 || c != 2 || e != 3 { // what earlier coordinators read
		t.Errorf("ParseStages = %v %v %v", d, c, e)
	}
	if p := ParsePipeStage(v); p != 4 {
		t.Errorf("pipe = %v", p)
	}
	if v := string(AppendPipeStage(AppendStages(nil, 1, 2, 3), 0)); v != "1 2 3" {
		t.Errorf("no pipe: %q, want the three fields alone", v)
	}
	for _, v := range []string{"1 2 3", "1 2 3 x", "1 2 3 -5", ""} {
		if p := ParsePipeStage(v); p != 0 {
			t.Errorf("ParsePipeStage(%q) = %v, want 0", v, p)
		}
	}
}

func FuzzDecodeExecReply(f *testing.F) {
	good, _ := AppendExecReply(nil, time.Millisecond, embedResult(2, 4))
	f.Add(good[frameHeader:])
	r := dataResult(2, 3)
	r.Out = workload.Output{Data: []byte("abc"), Ends: []uint32{1, 3}}
	ends, _ := AppendExecReply(nil, 0, r)
	f.Add(ends[frameHeader:])
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Result
		if _, err := DecodeExecReply(b, &r); err != nil {
			return
		}
		if err := checkResult(&r); err != nil {
			t.Fatalf("decoded an inconsistent result: %v", err)
		}
	})
}

func TestQueueStageIsAFifthField(t *testing.T) {
	for _, tc := range []struct {
		name        string
		pipe, queue time.Duration
		want        string
	}{
		{"queue, no pipe", 0, 9, "1 2 3 0 9"},
		{"queue and pipe", 4, 9, "1 2 3 4 9"},
		{"pipe alone", 4, 0, "1 2 3 4"},
		{"neither", 0, 0, "1 2 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := string(AppendQueueStage(AppendPipeStage(AppendStages(nil, 1, 2, 3), tc.pipe), tc.pipe, tc.queue))
			if v != tc.want {
				t.Fatalf("stages = %q, want %q", v, tc.want)
			}
			if d, c, e := ParseStages(v); d != 1 || c != 2 || e != 3 { // what earlier coordinators read
				t.Errorf("ParseStages = %v %v %v", d, c, e)
			}
			if got := ParsePipeStage(v); got != tc.pipe {
				t.Errorf("pipe = %v, want %v", got, tc.pipe)
			}
			if got := ParseQueueStage(v); got != tc.queue {
				t.Errorf("queue = %v, want %v", got, tc.queue)
			}
		})
	}
	for _, v := range []string{"1 2 3", "1 2 3 4", "1 2 3 4 x", "1 2 3 4 -5", ""} {
		if q := ParseQueueStage(v); q != 0 {
			t.Errorf("ParseQueueStage(%q) = %v, want 0", v, q)
		}
	}
}
