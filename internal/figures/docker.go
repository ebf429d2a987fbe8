package figures

import (
	"fmt"
	"strconv"
	"strings"
)

// Containers (docs/docker.md): the image, scaling over worker containers
// and the compose tests. Needs a Docker engine and docker compose (or
// docker-compose) and jq, as scripts/scale.sh does.
var dockerSet = Set{Name: "docker", Cmds: []Cmd{
	{Key: "image", Sh: true, Args: []string{"make image >&2 && docker image inspect -f '{{.Size}}' ferry:dev"}},
	{Key: "scale-embed", Sh: true, Args: []string{"scripts/scale.sh 4"}, Quick: []string{"scripts/scale.sh 2"}},
	{Key: "scale-infer", Sh: true, Args: []string{"scripts/scale.sh 4 -- --workload infer --docs 2000 --batch-size 20"},
		Quick: []string{"scripts/scale.sh 2 -- --workload infer --docs 2000 --batch-size 20"}},
	{Key: "compose", Go: true, Args: []string{"test", "-count=1", "-v", "./test/compose"}},
}}

func renderDockerImage(d *Data) (string, error) {
	rs := d.Of("image")
	if len(rs) == 0 {
		return "", fmt.Errorf("no image run")
	}
	n, err := strconv.ParseInt(strings.TrimSpace(rs[0].Text), 10, 64)
	if err != nil {
		return "", fmt.Errorf("image size %q: %w", rs[0].Text, err)
	}
	return fmt.Sprintf("The image is **%.1f MB** (%s bytes, `%s`).\n", float64(n)/1e6, grouped(float64(n)), rs[0].Command), nil
}

// renderDockerScale is scripts/scale.sh's output: its header as a sample,
// its markdown table as it printed it.
func renderDockerScale(d *Data) (string, error) {
	var b strings.Builder
	for _, key := range []string{"scale-embed", "scale-infer"} {
		rs := d.Of(key)
		if len(rs) == 0 {
			return "", fmt.Errorf("no %s run", key)
		}
		var head, table []string
		for _, line := range strings.Split(strings.TrimSpace(rs[0].Text), "\n") {
			switch {
			case strings.HasPrefix(line, "|"):
				table = append(table, line)
			case strings.TrimSpace(line) != "":
				head = append(head, line)
			}
		}
		if len(table) < 3 {
			return "", fmt.Errorf("%s: no table in its output", key)
		}
		fmt.Fprintf(&b, "```\n$ %s\n%s\n```\n\n%s\n\n", rs[0].Command, strings.Join(head, "\n"), strings.Join(table, "\n"))
	}
	return b.String(), nil
}
