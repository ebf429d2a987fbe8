package figures

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The capacity job of README.md and docs/capacity.md (scripts/capacity.sh's).
var capacitySet = Set{Name: "capacity", Cmds: []Cmd{{
	Key: "capacity", Once: true,
	Args: []string{"capacity", "-q", "--spin-cost", "2ms", "--out-bytes", "1536", "--batch-size", "100"},
	Quick: []string{"capacity", "-q", "--spin-cost", "2ms", "--out-bytes", "1536", "--batch-size", "100",
		"--validate-workers", "1,4", "--repeats", "1", "--run-time", "500ms", "--knee-at", "0", "--validate-coordinators", "1"},
}}}

// capacityReport is what the figures read of a ferry.capacity report.
type capacityReport struct {
	Capacity struct {
		Job struct {
			BatchSize int     `json:"batch_size"`
			ComputeUs float64 `json:"compute_us_per_doc"`
		} `json:"job"`
		Brokers []struct {
			Nodes int `json:"nodes"`
			Costs struct {
				SerialShare float64 `json:"coordinator_serial_share"`
				BytesA      float64 `json:"bytes_a"`
				BytesPerDoc float64 `json:"bytes_per_doc"`
			} `json:"costs"`
			Series []struct {
				Name         string  `json:"name"`
				Coordinators int     `json:"coordinators"`
				MeasuredKnee float64 `json:"measured_knee_workers"`
				KneeNow      float64 `json:"predicted_knee_now_workers"`
				Prediction   struct {
					Shape struct {
						ComputeUs float64 `json:"compute_us_per_doc"`
					} `json:"shape"`
					Knee float64 `json:"knee_workers"`
				} `json:"prediction"`
				Points []struct {
					Workers    int     `json:"workers"`
					DocsPerS   float64 `json:"docs_per_s"`
					Predicted  float64 `json:"predicted_docs_per_s"`
					Error      float64 `json:"error"`
					Efficiency float64 `json:"efficiency"`
				} `json:"points"`
			} `json:"series"`
		} `json:"brokers"`
		Layouts []struct {
			Layout struct {
				Coordinator  float64 `json:"coordinator_cores"`
				Broker       float64 `json:"broker_cores"`
				Shared       float64 `json:"shared_cores"`
				Nodes        int     `json:"broker_nodes"`
				Coordinators int     `json:"coordinators"`
			} `json:"layout"`
			WorkerDocsPerS float64 `json:"worker_docs_per_s"`
			Resources      []struct {
				Name     string  `json:"name"`
				DemandUs float64 `json:"demand_us_per_batch"`
			} `json:"resources"`
			Knee       float64 `json:"knee_workers"`
			Bottleneck string  `json:"bottleneck"`
		} `json:"layouts"`
		Memory struct {
			Workers int     `json:"workers"`
			TotalMB float64 `json:"total_mb"`
		} `json:"memory"`
		Load [2]string `json:"load_average"`
	} `json:"capacity"`
	Goals []struct {
		Name     string `json:"name"`
		Target   string `json:"target"`
		Measured string `json:"measured"`
		Met      string `json:"met"`
	} `json:"goals"`
}

func loadCapacity(d *Data) (*capacityReport, string, error) {
	rs, err := decode[capacityReport](d.Of("capacity"))
	if err != nil {
		return nil, "", err
	}
	return &rs[0], "`" + d.Of("capacity")[0].Command + "`", nil
}

// renderCapacityValidation is the measured-against-predicted table.
func renderCapacityValidation(d *Data) (string, error) {
	c, cmd, err := loadCapacity(d)
	if err != nil {
		return "", err
	}
	var one, cluster []string
	var pts [2][]string
	for i, br := range c.Capacity.Brokers {
		if i > 1 {
			break
		}
		for _, s := range br.Series {
			if s.Name != "job" || s.Coordinators > 1 {
				continue
			}
			for _, p := range s.Points {
				pts[i] = append(pts[i], fmt.Sprintf("%d", p.Workers))
				cells := []string{grouped(p.Predicted), grouped(p.DocsPerS)}
				if i == 0 {
					cells = append(cells, signedPercent(p.Error))
				}
				cells = append(cells, fixed(2)(p.Efficiency))
				if i == 0 {
					one = append(one, strings.Join(cells, " | "))
				} else {
					cluster = append(cluster, strings.Join(cells, " | "))
				}
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: the job is %s of emulated compute per document, batches of %d, "+
		"%s bytes per document on the wire.\n\n", cmd, micros(c.Capacity.Job.ComputeUs), c.Capacity.Job.BatchSize, bytesPerDoc(c))
	b.WriteString("| workers | predicted docs/s | measured docs/s | error | efficiency | 3-node cluster: predicted | measured | efficiency |\n")
	b.WriteString("|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for i, w := range pts[0] {
		cl := "- | - | -"
		if i < len(cluster) {
			cl = cluster[i]
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", w, one[i], cl)
	}
	return b.String(), nil
}

func bytesPerDoc(c *capacityReport) string {
	if len(c.Capacity.Brokers) == 0 {
		return "?"
	}
	k := c.Capacity.Brokers[0].Costs
	b := float64(c.Capacity.Job.BatchSize)
	return grouped((k.BytesA + k.BytesPerDoc*b) / b)
}

// layoutName says a layout in words.
func layoutName(l struct {
	Coordinator  float64 `json:"coordinator_cores"`
	Broker       float64 `json:"broker_cores"`
	Shared       float64 `json:"shared_cores"`
	Nodes        int     `json:"broker_nodes"`
	Coordinators int     `json:"coordinators"`
}) string {
	s := fmt.Sprintf("coordinator %g cores, broker %g cores", l.Coordinator, l.Broker)
	if l.Shared > 0 {
		s = fmt.Sprintf("coordinator and broker sharing %g cores", l.Shared)
	}
	if l.Nodes > 1 {
		s += fmt.Sprintf(", %d-node cluster", l.Nodes)
	}
	if l.Coordinators > 1 {
		s += fmt.Sprintf(", input sharded over %d coordinators", l.Coordinators)
	}
	return s
}

// renderCapacityLayouts is the knee of every layout, from the same run.
func renderCapacityLayouts(d *Data) (string, error) {
	c, _, err := loadCapacity(d)
	if err != nil {
		return "", err
	}
	if len(c.Capacity.Layouts) == 0 {
		return "", fmt.Errorf("no layouts")
	}
	var b strings.Builder
	first := c.Capacity.Layouts[0]
	var parts []string
	for _, r := range first.Resources {
		if !strings.Contains(r.Name, "serial") {
			parts = append(parts, fmt.Sprintf("%s %s us", strings.Fields(r.Name)[0], grouped(r.DemandUs)))
		}
	}
	share := 0.0
	if len(c.Capacity.Brokers) > 0 {
		share = c.Capacity.Brokers[0].Costs.SerialShare
	}
	fmt.Fprintf(&b, "Predicted from the costs the same run measured (%s of CPU per batch of %d; %.0f%% of the coordinator's on one goroutine), workers remote:\n\n",
		strings.Join(parts, ", "), c.Capacity.Job.BatchSize, 100*share)
	b.WriteString("| layout | saturation docs/s | knee (workers) | bottleneck |\n| --- | --: | --: | --- |\n")
	for _, l := range c.Capacity.Layouts {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", layoutName(l.Layout), millions(l.Knee*l.WorkerDocsPerS), grouped(l.Knee), l.Bottleneck)
	}
	b.WriteString("\n")
	for _, br := range c.Capacity.Brokers {
		for _, s := range br.Series {
			if s.Name == "knee" && s.Coordinators <= 1 && br.Nodes == 1 {
				fmt.Fprintf(&b, "The knee series (compute %s per document) was predicted to knee at %.1f workers on this machine and measured at %.1f. ",
					micros(s.Prediction.Shape.ComputeUs), s.KneeNow, s.MeasuredKnee)
			}
		}
	}
	if m := c.Capacity.Memory; m.Workers > 0 {
		fmt.Fprintf(&b, "%d emulated workers, coordinator and broker took %s of resident memory.\n", m.Workers, gigabytes(m.TotalMB))
	}
	return b.String(), nil
}

func gigabytes(mb float64) string {
	if mb >= 1000 {
		return fmt.Sprintf("%.2f GB", mb/1000)
	}
	return fmt.Sprintf("%.0f MB", math.Round(mb))
}

// renderCapacityGoals is the capacity report's goals, as it judged them.
func renderCapacityGoals(d *Data) (string, error) {
	c, cmd, err := loadCapacity(d)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s:\n\n| goal | target | measured | met |\n|---|---|---|---|\n", cmd)
	for _, g := range c.Goals {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", g.Name, g.Target, orDash(g.Measured), g.Met)
	}
	return b.String(), nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// micros is a duration given in microseconds, in ms from 1 ms up.
func micros(us float64) string {
	if us >= 1000 {
		return strconv.FormatFloat(us/1000, 'f', -1, 64) + " ms"
	}
	return strconv.FormatFloat(math.Round(us*10)/10, 'f', -1, 64) + " us"
}

// renderCapacitySeries is every validation point of every series, and each
// series' knee, predicted and measured.
func renderCapacitySeries(d *Data) (string, error) {
	c, cmd, err := loadCapacity(d)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s, each point the median of its repeats:\n\n", cmd)
	b.WriteString("| brokers | series | compute per document | workers | predicted docs/s | measured docs/s | error | efficiency |\n")
	b.WriteString("| --- | --- | --: | --: | --: | --: | --: | --: |\n")
	var knees []string
	for _, br := range c.Capacity.Brokers {
		shape := "1 broker"
		if br.Nodes > 1 {
			shape = fmt.Sprintf("%d-node cluster", br.Nodes)
		}
		for _, s := range br.Series {
			name := s.Name
			if s.Coordinators > 1 {
				name = fmt.Sprintf("%s, %d coordinators", s.Name, s.Coordinators)
			}
			for _, p := range s.Points {
				eff := "-"
				if p.Efficiency > 0 {
					eff = fixed(2)(p.Efficiency)
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %d | %s | %s | %s | %s |\n", shape, name, micros(s.Prediction.Shape.ComputeUs),
					p.Workers, grouped(p.Predicted), grouped(p.DocsPerS), signedPercent(p.Error), eff)
			}
			measured := "not reached (the most workers within 10% of linear)"
			if s.MeasuredKnee > 0 {
				measured = fmt.Sprintf("%.1f", s.MeasuredKnee)
			}
			knees = append(knees, fmt.Sprintf("| %s | %s | %s | %s | %s |", shape, name,
				grouped(s.Prediction.Knee), fixed(1)(s.KneeNow), measured))
		}
	}
	b.WriteString("\n| brokers | series | predicted knee at calibration | with the cores before the last point | measured knee |\n| --- | --- | --: | --: | --- |\n")
	b.WriteString(strings.Join(knees, "\n") + "\n")
	return b.String(), nil
}
