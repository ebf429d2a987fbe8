package capacity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferrylab/ferry/coordinator"
)

// calibrate measures the costs the model predicts from, on fleet f of
// workers workers:
//
//  1. a warm-up run, which also gives the saturated rate the next runs are
//     sized by;
//  2. the workers' CPU while attached and idle, for half a run (at most a
//     second);
//  3. runs with no compute at a quarter, once and four times the job's
//     batch size: every part of the fleet is then as busy as the machine
//     lets it be, and each part's CPU per batch is fitted against the
//     batch's wire bytes (a + k*bytes), and the bytes against the size; a
//     CPU profile of this process during them finds the coordinator's
//     serial path;
//  4. runs whose batches wait 10 ms each: with the job's batches in flight,
//     how much longer than asked a worker is held and the CPU a worker
//     spends going idle and waking per batch; with one in flight, how long
//     a batch takes to come back and the next to reach the worker (the
//     latency that batches in flight hide).
func calibrate(ctx context.Context, cfg Config, f Fleet, job coordinator.Config, workers int) (Costs, []Sample, error) {
	c := Costs{Nodes: len(f.BrokerPIDs())}
	b := job.BatchSize
	nocompute := job
	nocompute.Params.SpinCostNs = 1 // the wait is nothing: the result is still made and sent
	warm, err := measure(ctx, f, cfg.CPU, nocompute, workers, docs(cfg.Docs, 8*workers*b))
	if err != nil {
		return c, nil, fmt.Errorf("calibrate: warm up: %w", err)
	}
	if c.IdleWorkerCores, err = idleCores(ctx, f, cfg.CPU, workers, min(max(cfg.RunTime/2, 200*time.Millisecond), time.Second)); err != nil {
		return c, nil, err
	}
	var runs []Sample
	sizes := []int{max(b/4, 1), b, 4 * b}
	var bytes, coord, work []float64
	var serial, profiledCPU time.Duration
	profiled := true
	brokers := make([][]float64, c.Nodes)
	var atB Sample
	for _, size := range sizes {
		j := nocompute
		j.BatchSize = size
		if err := j.Validate(); err != nil {
			continue // 4b may pass the batch limit: fit on the sizes that are valid
		}
		r, cpu, all, err := serialCPU(func() (Sample, error) {
			return measure(ctx, f, cfg.CPU, j, workers, docs(cfg.Docs, planDocs(warm.DocsPerS, cfg.RunTime, workers, size)))
		})
		r.Series = "calibrate"
		if errors.Is(err, errProfiling) {
			profiled, err = false, nil
		}
		if err != nil {
			r.Error = err.Error()
			return c, append(runs, r), fmt.Errorf("calibrate at batch %d: %w", size, err)
		}
		if r.Batches > 0 {
			r.SerialUs = us(cpu) / float64(r.Batches)
		}
		serial, profiledCPU = serial+cpu, profiledCPU+all
		cfg.Log.Info("calibrated", "nodes", c.Nodes, "batch", size, "docs_per_s", int(r.DocsPerS), "cores", r.Cores)
		runs = append(runs, r)
		bytes, coord, work = append(bytes, r.Bytes), append(coord, r.CoordinatorUs), append(work, r.WorkersUs)
		for i := range brokers {
			if i < len(r.BrokerUs) {
				brokers[i] = append(brokers[i], r.BrokerUs[i])
			}
		}
		if size == b {
			atB = r
		}
	}
	c.Coordinator, c.Workers = fitLine(bytes, coord), fitLine(bytes, work)
	// The serial path is a share of the coordinator's CPU: the share the
	// profile's samples give, over all three runs (a ratio of counts in one
	// profile, steadier than each run's few samples against its batches).
	if profiled && profiledCPU > 0 {
		c.SerialShare = float64(serial) / float64(profiledCPU)
		c.Serial = Line{AUs: c.Coordinator.AUs * c.SerialShare, KNsB: c.Coordinator.KNsB * c.SerialShare, R2: c.Coordinator.R2}
	}
	for _, ys := range brokers {
		c.Brokers = append(c.Brokers, fitLine(bytes, ys))
	}
	var batchSizes []float64
	for _, r := range runs {
		batchSizes = append(batchSizes, float64(r.BatchSize))
	}
	perDoc := fitLine(batchSizes, bytes) // in bytes per 1000 documents
	c.BytesA, c.BytesPerDoc = perDoc.AUs, perDoc.KNsB/1e3
	c.Cores, c.SaturatedDocsPerS = atB.Cores, atB.DocsPerS

	// The wait: 10 ms per batch, few enough batches at once that the
	// machine is not saturated, so what is measured is the timer. With the
	// job's batches in flight a worker finds its next batch queued and goes
	// idle only in the wait, as in the validation: that run gives the
	// overshoot and the wait's CPU. With one in flight nothing is queued at
	// the worker, so the transport stage is the round trip's latency.
	wait, err := waitRun(ctx, cfg, f, job, workers, job.InFlight)
	if err != nil {
		return c, append(runs, wait), err
	}
	one, err := waitRun(ctx, cfg, f, job, workers, 1)
	if err != nil {
		return c, append(runs, wait, one), err
	}
	runs = append(runs, wait, one)
	// Medians: a burst of other work on the machine stretches a few batches
	// by milliseconds, and would move means far from the typical batch.
	c.OvershootUs = wait.ComputeStageP50Us - wait.ComputeUs*float64(b) - atB.ComputeStageP50Us
	c.LatencyUs = one.TransportP50Us
	idle := c.IdleWorkerCores * float64(workers) * wait.WallS / float64(wait.Batches) * 1e6
	c.WaitCPUUs = max(wait.WorkersUs-idle-c.Workers.At(wait.Bytes), 0)
	return c, runs, nil
}

// waitRun runs batches that wait 10 ms each, inflight at a time per
// worker, for about a second.
func waitRun(ctx context.Context, cfg Config, f Fleet, job coordinator.Config, workers, inflight int) (Sample, error) {
	b := job.BatchSize
	job.InFlight = inflight
	job.Params.SpinCostNs = int64(10*time.Millisecond) / int64(b)
	r, err := measure(ctx, f, cfg.CPU, job, workers, docs(cfg.Docs, planDocs(float64(workers*b)/0.01, min(cfg.RunTime, time.Second), workers, b)))
	r.Series = "calibrate"
	if err != nil {
		r.Error = err.Error()
		return r, fmt.Errorf("calibrate the wait, %d in flight: %w", inflight, err)
	}
	return r, nil
}

// idleCores is the CPU one attached worker uses per second while no job
// runs, measured over d.
func idleCores(ctx context.Context, f Fleet, cpu ProcessCPU, workers int, d time.Duration) (float64, error) {
	c0, err := snapshot(f, cpu)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(d):
	}
	c1, err := snapshot(f, cpu)
	if err != nil {
		return 0, err
	}
	return (c1.workers - c0.workers).Seconds() / time.Since(start).Seconds() / float64(workers), nil
}
