package lab

import (
	"context"
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/internal/cpuprof"
	"github.com/ferrylab/ferry/report"
)

// profiler records the CPU of a fleet's worker processes by part
// (fleet.Fleet): what the breakdown needs beyond this process's own profile.
type profiler interface {
	StartProfiles() error
	StopProfiles(ctx context.Context) ([]cpuprof.Profile, error)
}

// breakdown is a CPU breakdown being recorded over one processes run.
type breakdown struct {
	rec *cpuprof.Recording
}

// startBreakdown starts recording the CPU of every process of a processes
// run by part: this one (the coordinator, and the broker when embedded)
// and the fleet's workers. nil when the run is not one to break down (not
// processes, sharded, workers elsewhere) or this process is profiled
// already (FERRY_CPUPROFILE).
func (e *runEnv) startBreakdown(run modeRun) *breakdown {
	if e.profiles == nil || run.mode != coordinator.ModeProcesses || run.String() != coordinator.ModeProcesses {
		return nil
	}
	rec, err := cpuprof.Start()
	if err != nil {
		e.log.Info("no CPU breakdown", "err", err)
		return nil
	}
	if err := e.profiles.StartProfiles(); err != nil {
		rec.Stop()
		e.log.Info("no CPU breakdown", "err", err)
		return nil
	}
	return &breakdown{rec: rec}
}

// stop ends the recordings and sets e.breakdown from them, per document of st.
func (b *breakdown) stop(ctx context.Context, e *runEnv, st *coordinator.Stats) {
	if b == nil {
		return
	}
	data, cpu, faults := b.rec.Stop()
	if ctx.Err() != nil { // interrupted: the workers are stopping, no wait for their files
		return
	}
	workers, err := e.profiles.StopProfiles(ctx)
	if err != nil {
		e.log.Warn("CPU breakdown without some workers", "err", err)
	}
	if st == nil || st.Docs == 0 {
		return
	}
	self, err := cpuprof.Parse("coordinator", cpu, data)
	if err != nil {
		e.log.Warn("no CPU breakdown", "err", err)
		return
	}
	self.Faults = faults
	if e.broker {
		self.Name = "coordinator+broker"
	}
	e.breakdown = breakdownReport(append([]cpuprof.Profile{self}, workers...), st.Docs, len(e.workerPIDs()))
	e.breakdown.Batches = st.Batches
}

// breakdownReport puts profiles in the report's terms: microseconds per
// document of docs. workers is how many worker processes there are, so a
// missing recording is named.
func breakdownReport(profiles []cpuprof.Profile, docs int64, workers int) *report.CPUBreakdown {
	perDoc := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(docs) }
	b := &report.CPUBreakdown{Missing: workers + 1 - len(profiles)}
	for p := range cpuprof.NumParts {
		b.Parts = append(b.Parts, p.String())
	}
	b.Compute = cpuprof.Compute.String()
	b.Ferry = []string{cpuprof.Encode.String(), cpuprof.Decode.String(), cpuprof.Copies.String(), cpuprof.Alloc.String(), cpuprof.Ferry.String()}
	for _, p := range profiles {
		row := report.CPUProcess{Name: p.Name, ClockUs: perDoc(p.Clock), SampledUs: perDoc(p.Sampled), Samples: p.Samples,
			HandlerUs: perDoc(p.Handler), HandlerSampledUs: perDoc(p.HandlerSampled), OwnUs: perDoc(p.Own), Faults: p.Faults}
		for _, d := range p.Parts {
			row.Parts = append(row.Parts, perDoc(d))
		}
		b.Processes = append(b.Processes, row)
	}
	return b
}
