package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayers keeps imports going downward (docs/architecture.md): the
// coordinator and the worker never import each other, and no engine
// package imports lab, fleet or cmd.
func TestLayers(t *testing.T) {
	const mod = "github.com/ferrylab/ferry/"
	forbidden := map[string][]string{
		"coordinator": {"worker", "lab", "fleet", "cmd", "broker"},
		"worker":      {"coordinator", "lab", "fleet", "cmd", "broker"},
		"broker":      {"coordinator", "worker", "lab", "fleet", "cmd"},
		"proto":       {"coordinator", "worker", "broker", "lab", "fleet", "cmd", "corpus", "sink"},
		"workload":    {"proto", "coordinator", "worker", "broker", "lab", "fleet", "cmd"},
		"corpus":      {"coordinator", "worker", "broker", "lab", "fleet", "cmd"},
		"sink":        {"coordinator", "worker", "broker", "lab", "fleet", "cmd"},
		"report":      {"broker", "fleet", "cmd"},
		"fleet":       {"lab", "cmd"},
	}
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range bad {
				if dep == mod+b || strings.HasPrefix(dep, mod+b+"/") {
					t.Errorf("%s imports %s (layers go downward: docs/architecture.md)", pkg, dep)
				}
			}
		}
	}
}
