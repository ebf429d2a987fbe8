package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayers keeps imports going downward (docs/architecture.md): the
// coordinator and the worker never import each other, no engine package
// imports lab, fleet or the command tree, and only a main imports the
// module's root package (ferry.Main).
func TestLayers(t *testing.T) {
	const mod = "github.com/ferrylab/ferry/"
	top := []string{"cmd", "internal/command", ""} // "" is the root package, ferry
	forbidden := map[string][]string{
		"coordinator": {"worker", "lab", "fleet", "broker"},
		"worker":      {"coordinator", "lab", "fleet", "broker"},
		"broker":      {"coordinator", "worker", "lab", "fleet"},
		"proto":       {"coordinator", "worker", "broker", "lab", "fleet", "corpus", "sink"},
		"workload":    {"proto", "coordinator", "worker", "broker", "lab", "fleet"},
		"corpus":      {"coordinator", "worker", "broker", "lab", "fleet"},
		"sink":        {"coordinator", "worker", "broker", "lab", "fleet"},
		"report":      {"broker", "fleet"},
		"fleet":       {"lab"},
		"bridge":      {"coordinator", "worker", "broker", "lab", "fleet"},
		"shm":         {"proto", "workload", "coordinator", "worker", "broker", "lab", "fleet", "corpus", "sink"},
		"lab":         {},
	}
	for pkg, bad := range forbidden {
		bad = append(bad, top...)
		out, err := exec.Command("go", "list", "-deps", mod+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range bad {
				if b == "" && dep+"/" == mod || b != "" && (dep == mod+b || strings.HasPrefix(dep, mod+b+"/")) {
					t.Errorf("%s imports %s (layers go downward: docs/architecture.md)", pkg, dep)
				}
			}
		}
	}
}
