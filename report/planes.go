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
