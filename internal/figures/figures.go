// Package figures reproduces every measured figure in README.md and docs/:
// it runs the ferry commands behind them (Measure), keeps what they printed in
// docs/figures/NAME.json, and rewrites the markdown blocks
//
//	<!-- figure:BLOCK -->
//	...generated...
//	<!-- /figure:BLOCK -->
//
// from that data (Render). Each block names the command it came from, the
// machine and the date. scripts/figures.sh drives it; its test checks that
// every block equals its rendering of the committed data and that no
// measured figure is left outside a block.
//
// It measures nothing itself (the commands do) and reads their JSON by field
// name, ignoring fields it does not know, so reports can grow.
package figures

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Data is one data set: every run of one Set's commands, as committed in
// docs/figures/NAME.json.
type Data struct {
	Set      string  `json:"set"`
	Quick    bool    `json:"quick"`   // small sizes (FIGURES_QUICK=1): a check of the machinery, not a measurement
	Date     string  `json:"date"`    // when the runs began, UTC, RFC 3339
	Repeats  int     `json:"repeats"` // rounds of the repeated commands
	RuntimeS float64 `json:"runtime_s"`
	Machine  Machine `json:"machine"`
	Runs     []Run   `json:"runs"`
}

// Run is one command's run.
type Run struct {
	Key     string  `json:"key"`
	Command string  `json:"command"` // as a reader would type it: "ferry run ..."
	Repeat  int     `json:"repeat"`  // 1-based round
	WallS   float64 `json:"wall_s"`
	// Output is the command's --format json report; Text its stdout when it
	// ran as a text sample.
	Output json.RawMessage `json:"output,omitempty"`
	Text   string          `json:"text,omitempty"`
	// Error is how a test or script failed (its output is kept: a failed
	// test's lines are figures too).
	Error string `json:"error,omitempty"`
}

// Of is the runs of key, in round order.
func (d *Data) Of(key string) []Run {
	var rs []Run
	for _, r := range d.Runs {
		if r.Key == key {
			rs = append(rs, r)
		}
	}
	return rs
}

// Load reads dir/NAME.json.
func Load(dir, name string) (*Data, error) {
	b, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		return nil, fmt.Errorf("figures: load %s: %w", name, err)
	}
	var d Data
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("figures: load %s: %w", name, err)
	}
	return &d, nil
}

// Save writes d to dir/SET.json.
func (d *Data) Save(dir string) error {
	b, err := json.MarshalIndent(d, "", " ")
	if err != nil {
		return fmt.Errorf("figures: save %s: %w", d.Set, err)
	}
	return os.WriteFile(filepath.Join(dir, d.Set+".json"), append(b, '\n'), 0o644)
}

// footer is the last line of every block: the machine, the date, the data
// and the command that reruns it.
func footer(d *Data) string {
	mode := ""
	if d.Quick {
		mode = ", quick mode (small sizes: the lead's full run replaces it)"
	}
	rounds := 0 // commands run once (Text, Once, Go) leave it at 1
	for _, r := range d.Runs {
		rounds = max(rounds, r.Repeat)
	}
	rep := ""
	if rounds > 1 {
		rep = fmt.Sprintf(", medians of %d rounds [range]", rounds)
	}
	return fmt.Sprintf("<sub>Measured on %s, %s%s%s; what each command printed (`--format json` where it has one) is in "+
		"[docs/figures/%s.json](%sdocs/figures/%s.json); rerun: `scripts/figures.sh %s`.</sub>",
		d.Machine, day(d.Date), rep, mode, d.Set, "{{root}}", d.Set, d.Set)
}

// day is the date part of an RFC 3339 time.
func day(t string) string {
	if i := strings.IndexByte(t, 'T'); i > 0 {
		return t[:i]
	}
	return t
}
