package figures

import (
	"fmt"
	"regexp"
	"strings"
)

// Limits at work (docs/auth.md): payload splitting and a flood at one
// worker.
var authSet = Set{Name: "auth", Cmds: []Cmd{
	{Key: "split", Args: []string{"run", "-q", "--max-payload", "262144", "--batch-size", "1000", "--doc-words", "5",
		"--docs", "3000", "--modes", "serial,processes", "--workers", "2"}},
	{Key: "flood", Go: true, Args: []string{"test", "-run", "^TestWorkerFloodStaysBounded$", "-v", "-count=1", "./internal/command/"}},
}}

type splitReport struct {
	Modes []struct {
		Mode    string `json:"mode"`
		Batches int64  `json:"batches"`
		Splits  int64  `json:"splits"`
		Docs    int64  `json:"docs"`
	} `json:"modes"`
	Identical bool `json:"identical_results"`
}

var floodLine = regexp.MustCompile(`worker peak RSS (\d+) MiB before the flood, (\d+) MiB after (\d+) MiB sent`)

func renderAuthFigures(d *Data) (string, error) {
	rs, err := decode[splitReport](d.Of("split"))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	split := d.Of("split")[0].Command
	for _, m := range rs[0].Modes {
		if m.Mode != "processes" {
			continue
		}
		same := "identical to serial's"
		if !rs[0].Identical {
			same = "NOT identical to serial's"
		}
		fmt.Fprintf(&b, "* **Payload splitting** (`TestResultsOverPayloadAreSplit`: `%s`): %s documents in batches of up to 1,000 embeddings, "+
			"over half the 256 KiB payload, became %d batches after %d splits; results %s.\n", split, grouped(float64(m.Docs)), m.Batches, m.Splits, same)
	}
	flood := d.Of("flood")
	if len(flood) == 0 {
		return "", fmt.Errorf("no flood run")
	}
	m := floodLine.FindStringSubmatch(flood[0].Text)
	if m == nil {
		return "", fmt.Errorf("flood: no %q line in the test's output", "worker peak RSS")
	}
	fmt.Fprintf(&b, "* **Flood** (`%s`: %s MiB of slow batches published at one `ferry worker` process): its peak RSS went from %s MiB to %s MiB; "+
		"the test fails past 96 MiB over the start.\n", flood[0].Command, m[3], m[1], m[2])
	return b.String(), nil
}
