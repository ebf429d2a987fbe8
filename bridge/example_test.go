package bridge_test

import (
	"bytes"
	"fmt"

	"github.com/ferrylab/ferry/bridge"
	"github.com/ferrylab/ferry/proto"
)

// An exec program reads request frames and writes reply frames; Serve is
// that program for a workload written in Go. Here one request goes through
// it on in-memory pipes, as it would on a child's stdin and stdout.
func ExampleServe() {
	var stdin, stdout bytes.Buffer
	req, _ := proto.AppendExecRequest(nil, &proto.Batch{ID: 1, Attempt: 1, Docs: []string{"ferry", "boat"}})
	stdin.Write(req)
	if err := bridge.Serve(&stdin, &stdout, bridge.ServeConfig{Workload: "upper"}); err != nil {
		fmt.Println(err)
		return
	}
	frame, _ := proto.ReadFrame(&stdout, nil, 0)
	var res proto.Result
	if _, err := proto.DecodeExecReply(frame, &res); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("batch %d: %q %q\n", res.BatchID, res.Out.Doc(0), res.Out.Doc(1))
	// Output: batch 1: "FERRY" "BOAT"
}
