package figures

import (
	"path/filepath"
	"sort"
)

// Sets is every data set, by name: what scripts/figures.sh runs.
var Sets = map[string]Set{
	matrixSet.Name:   matrixSet,
	capacitySet.Name: capacitySet,
	runSet.Name:      runSet,
	wireSet.Name:     wireSet,
	authSet.Name:     authSet,
	faultsSet.Name:   faultsSet,
	labSet.Name:      labSet,
	dockerSet.Name:   dockerSet,
	shmSet.Name:      shmSet,
}

// BlockDef is how one block is generated: from which set's data, by which
// renderer.
type BlockDef struct {
	Set    string
	Render func(*Data) (string, error)
}

// Registry is every block name a markdown file may hold.
var Registry = map[string]BlockDef{
	"matrix":                  {"matrix", renderMatrix},
	"matrix-rows":             {"matrix", renderMatrixRows},
	"matrix-cpu":              {"matrix", renderMatrixCPU},
	"matrix-cpu-samples":      {"matrix", func(d *Data) (string, error) { return sample(d, "spin-text", "infer-text") }},
	"matrix-llm":              {"matrix", renderMatrixLLM},
	"matrix-llm-sample":       {"matrix", func(d *Data) (string, error) { return sample(d, "llm-text") }},
	"matrix-pipeline":         {"matrix", renderMatrixPipeline},
	"matrix-pipeline-sample":  {"matrix", func(d *Data) (string, error) { return sample(d, "pipeline-text") }},
	"capacity-validation":     {"capacity", renderCapacityValidation},
	"capacity-layouts":        {"capacity", renderCapacityLayouts},
	"capacity-goals":          {"capacity", renderCapacityGoals},
	"capacity-series":         {"capacity", renderCapacitySeries},
	"run-sample":              {"run", renderRunSample},
	"run-repeats":             {"run", renderRunRepeats},
	"run-breakdown":           {"run", renderRunBreakdown},
	"shm-split":               {"shm", renderShmSplit},
	"shm-runs":                {"shm", renderShmRuns},
	"shm-noop":                {"shm", renderShmNoop},
	"shm-bench":               {"shm", renderShmBench},
	"auth-figures":            {"auth", renderAuthFigures},
	"lab-sweep-sample":        {"lab", func(d *Data) (string, error) { return sample(d, "sweep-default") }},
	"lab-break-even":          {"lab", renderLabBreakEven},
	"lab-recommend-sample":    {"lab", func(d *Data) (string, error) { return sample(d, "recommend-embed", "recommend-spin") }},
	"lab-auto-run-sample":     {"lab", func(d *Data) (string, error) { return sample(d, "auto-run") }},
	"lab-auto":                {"lab", renderLabAuto},
	"lab-diff-sample":         {"lab", renderLabDiff},
	"lab-memory":              {"lab", renderLabMemory},
	"lab-goals":               {"lab", renderLabGoals},
	"docker-image":            {"docker", renderDockerImage},
	"docker-scale":            {"docker", renderDockerScale},
	"docker-compose-tests":    {"docker", renderFaultsSuite("compose")},
	"faults-suite":            {"faults", renderFaultsSuite("suite")},
	"faults-long":             {"faults", renderFaultsSuite("long")},
	"faults-bench":            {"faults", renderFaultsBench},
	"faults-jetstream-sample": {"faults", func(d *Data) (string, error) { return sample(d, "jetstream-text") }},
	"wire-bench-sample":       {"wire", func(d *Data) (string, error) { return sample(d, "bench-text") }},
	"wire-run-sample":         {"wire", func(d *Data) (string, error) { return sample(d, "run-text") }},
	"wire-stages":             {"wire", renderWireStages},
	"wire-cpu":                {"wire", renderWireCPU},
	"wire-codec":              {"wire", renderWireCodec},
	"wire-msgpack":            {"wire", renderWireMsgpack},
	"wire-compress":           {"wire", renderWireCompress},
	"wire-dispatch":           {"wire", renderWireDispatch},
	"wire-goals":              {"wire", renderWireGoals},
	"wire-benchmarks":         {"wire", renderWireBenchmarks},
}

// SetNames is the sets' names, sorted.
func SetNames() []string {
	var ns []string
	for n := range Sets {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// Documents is the markdown files that may hold figures, relative to the
// repository root: README.md and docs/*.md.
func Documents(root string) ([]string, error) {
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		return nil, err
	}
	out := []string{"README.md"}
	for _, d := range docs {
		rel, err := filepath.Rel(root, d)
		if err != nil {
			return nil, err
		}
		out = append(out, filepath.ToSlash(rel))
	}
	return out, nil
}
