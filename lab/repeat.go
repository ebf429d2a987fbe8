package lab

import (
	"context"
	"fmt"
	"slices"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/report"
)

// roundRun is one mode's run in one round of a repeated run.
type roundRun struct {
	modeRun
	round, rounds int
}

func (r roundRun) String() string {
	if r.rounds <= 1 {
		return r.modeRun.String()
	}
	return fmt.Sprintf("%s (round %d of %d)", r.modeRun, r.round+1, r.rounds)
}

// runRounds runs the modes Config.Repeat times, interleaved: each round
// runs every mode once, in order (A B A B ...), so drift of a shared
// machine (another build, a noisy neighbour) hits every mode alike and a
// ratio taken within a round compares runs seconds apart. It returns one
// row per mode for the report (the median round by docs/s, or the run that
// failed), and with two or more rounds every round's stats (rounds[i][j]:
// round i, mode j; nil where it failed or did not run). The first round's
// last run writes Out, as a single run would: the results are there (and an
// interrupt keeps their prefix) without waiting for the other rounds.
func (e *runEnv) runRounds(ctx context.Context, runs []modeRun) (stats []*coordinator.Stats, errs []error, rounds [][]*coordinator.Stats, first error) {
	n := max(e.cfg.Repeat, 1)
	if n > 1 && e.cfg.JobID != "" && slices.Contains(e.cfg.Dispatch, coordinator.DispatchJetStream) {
		// A second round of the same job ID would resume the first's
		// results instead of computing them.
		e.log.Warn("one round only: dispatch=jetstream with a job_id resumes the job in every later round", "repeat", n)
		n = 1
	}
	var flat []roundRun
	for i := range n {
		for _, r := range runs {
			flat = append(flat, roundRun{modeRun: r, round: i, rounds: n})
		}
	}
	all, allErrs, first := eachMode(ctx, flat, func(i int, run roundRun) (*coordinator.Stats, error) {
		st, err := e.runMode(ctx, run.modeRun, i == len(runs)-1)
		if st == nil {
			st = &coordinator.Stats{Mode: run.modeRun.String()} // the report still names the mode that failed
		}
		return st, err
	})
	if n == 1 {
		return all, allErrs, nil, first
	}
	for i := 0; i*len(runs) < len(all); i++ {
		round := make([]*coordinator.Stats, len(runs))
		for j := range runs {
			if k := i*len(runs) + j; k < len(all) && allErrs[k] == nil {
				round[j] = all[k]
			}
		}
		rounds = append(rounds, round)
	}
	for j := range runs {
		if j >= len(all) {
			break // stopped before this mode's first run
		}
		failed := -1
		for k := j; k < len(all); k += len(runs) {
			if allErrs[k] != nil {
				failed = k
				break
			}
		}
		col := make([]*coordinator.Stats, len(rounds))
		for i := range rounds {
			col[i] = rounds[i][j]
		}
		med := report.MedianRun(col)
		if failed >= 0 || med < 0 {
			k := max(failed, j)
			stats, errs = append(stats, all[k]), append(errs, allErrs[k])
			continue
		}
		for _, s := range col {
			if s != nil && s.Digest != col[med].Digest && first == nil {
				first = fmt.Errorf("%s: results differ between rounds (see digests with --format json)", runs[j])
			}
		}
		stats, errs = append(stats, col[med]), append(errs, nil)
	}
	return stats, errs, rounds, first
}
