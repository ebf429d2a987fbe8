package capacity

import (
	"fmt"
	"math"
	"os"
	"strings"
)

// Goal targets (issue 16), checked on one run's own measurements.
const (
	GoalPointError = 0.15       // predicted docs/s within 15% of measured, every validation point
	GoalKneeError  = 0.25       // predicted knee within 25% of the measured knee
	GoalEfficiency = 0.90       // emulated scaling efficiency below the knee
	GoalMemoryMB   = 4294.97    // 4 GiB in MB (10^6 bytes): 64 emulated workers, coordinator and broker
	goalWorkers    = 64         // the memory goal's worker count
	bytesPerGiB    = 1073741824 // for the memory line
)

// Goal is one goal and whether this run met it.
type Goal struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	// Met is "yes", "no", or "n/a" when the run could not tell (a series
	// not run, no knee reached).
	Met string `json:"met"`
}

// Goals checks the run against the goals.
func (r *Result) Goals() []Goal {
	return []Goal{r.pointGoal(), r.kneeGoal(), r.efficiencyGoal(), r.memoryGoal()}
}

func verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// pointGoal: the worst prediction error over every validation point (the
// median error of its repeats) of one coordinator; sharded runs are shown,
// not part of the goal.
func (r *Result) pointGoal() Goal {
	g := Goal{Name: "predicted docs/s vs measured, every validation point", Target: fmt.Sprintf("within %.0f%%", 100*GoalPointError), Met: "n/a"}
	worst, where := -1.0, ""
	for _, b := range r.Brokers {
		for _, s := range b.Series {
			for _, p := range s.Points {
				if e := math.Abs(p.Error); p.DocsPerS > 0 && s.Coordinators <= 1 && e > worst {
					worst, where = e, fmt.Sprintf("%s, %d workers, %s", s.Name, p.Workers, nodesName(b.Nodes))
				}
			}
		}
	}
	if worst >= 0 {
		g.Measured = fmt.Sprintf("worst %.0f%% (%s)", 100*worst, where)
		g.Met = verdict(worst <= GoalPointError)
	}
	return g
}

// kneeGoal: each knee series' predicted knee against its measured one.
func (r *Result) kneeGoal() Goal {
	g := Goal{Name: "predicted knee vs measured knee", Target: fmt.Sprintf("within %.0f%%", 100*GoalKneeError), Met: "n/a"}
	var parts []string
	ok, measured := true, false
	for _, b := range r.Brokers {
		for _, s := range b.Series {
			if s.Name != "knee" {
				continue
			}
			if s.MeasuredKnee == 0 {
				parts = append(parts, fmt.Sprintf("%s: no knee measured", nodesName(b.Nodes)))
				continue
			}
			e := s.KneeNow/s.MeasuredKnee - 1
			measured = true
			ok = ok && math.Abs(e) <= GoalKneeError
			parts = append(parts, fmt.Sprintf("%s: %.1f predicted, %.1f measured (%+.0f%%)", nodesName(b.Nodes), s.KneeNow, s.MeasuredKnee, 100*e))
		}
	}
	g.Measured = strings.Join(parts, "; ")
	if measured {
		g.Met = verdict(ok)
	}
	return g
}

// efficiencyGoal: the least efficiency at a point the model puts below
// the knee.
func (r *Result) efficiencyGoal() Goal {
	g := Goal{Name: "emulated scaling efficiency below the knee", Target: fmt.Sprintf("at least %.2f up to %d workers", GoalEfficiency, goalWorkers), Met: "n/a"}
	least, where, most := 2.0, "", 0
	for _, b := range r.Brokers {
		for _, s := range b.Series {
			for _, p := range s.Points {
				if p.Efficiency == 0 || p.Limit != "workers" {
					continue
				}
				most = max(most, p.Workers)
				if p.Efficiency < least {
					least, where = p.Efficiency, fmt.Sprintf("%s, %d workers, %s", s.Name, p.Workers, nodesName(b.Nodes))
				}
			}
		}
	}
	if where != "" {
		g.Measured = fmt.Sprintf("least %.3f (%s); points below the knee up to %d workers", least, where, most)
		g.Met = verdict(least >= GoalEfficiency && most >= goalWorkers)
	}
	return g
}

func (r *Result) memoryGoal() Goal {
	m := r.Memory
	g := Goal{Name: fmt.Sprintf("resident memory, %d emulated workers + coordinator + broker", goalWorkers), Target: "at most 4 GiB", Met: "n/a"}
	if m.Workers == 0 {
		return g
	}
	g.Measured = fmt.Sprintf("%.0f MB (%.2f GiB) at %d workers, sum of each process's peak", m.PeakMB, m.PeakMB*1e6/bytesPerGiB, m.Workers)
	if m.Workers >= goalWorkers {
		g.Met = verdict(m.PeakMB <= GoalMemoryMB)
	}
	return g
}

// loadAverage is /proc/loadavg's three averages, "" where unreadable.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
