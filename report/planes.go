package report

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// planesLine says which data plane m's workers used, when any used shared
// memory or the mode asked for it ("" otherwise: NATS is the default and
// needs no line). A worker listed on nats in a shm mode fell back: it has
// no shared memory with this process (a remote worker, a container).
func planesLine(m Mode) string {
	asked := strings.HasSuffix(m.Mode, "/shm")
	count := map[string]int{}
	for _, p := range m.Planes {
		count[p]++
	}
	if !asked && count["shm"] == 0 && count["nats+shm"] == 0 {
		return ""
	}
	if len(count) == 0 {
		return "data plane: no worker was sent a batch"
	}
	var parts []string
	for _, p := range slices.Sorted(maps.Keys(count)) {
		parts = append(parts, fmt.Sprintf("%s for %d", p, count[p]))
	}
	line := "data plane " + strings.Join(parts, ", ") + " of " + fmt.Sprint(len(m.Planes)) + " workers"
	if asked && count["nats"] > 0 {
		line += " (nats: fell back, no shared memory with this process)"
	}
	return line
}

// boundarySplit splits the process boundary's CPU per document into the
// broker's transport (processes over NATS minus processes over shm) and
// the boundary itself (processes over shm minus goroutines), when a run
// measured all three; "" otherwise.
func boundarySplit(r *Report) string {
	var g, nats, shm *Mode
	for i := range r.Modes {
		switch m := &r.Modes[i]; m.Mode {
		case "goroutines":
			g = m
		case "processes":
			nats = m
		case "processes/shm":
			shm = m
		}
	}
	if g == nil || nats == nil || shm == nil || g.CPUus <= 0 || nats.CPUus <= 0 || shm.CPUus <= 0 {
		return ""
	}
	return fmt.Sprintf("boundary split, CPU per document: processes %.1f us = goroutines %.1f + process boundary %.1f (shm) + broker transport %.1f (NATS); processes/shm at %.2fx goroutines' CPU per document",
		nats.CPUus, g.CPUus, shm.CPUus-g.CPUus, nats.CPUus-shm.CPUus, g.CPUus/shm.CPUus)
}
