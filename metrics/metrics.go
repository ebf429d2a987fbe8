// Package metrics holds ferry's Prometheus metrics: what a worker and a
// coordinator export, each on a registry of its own (never the global one),
// and the HTTP server that exposes them with a health endpoint.
//
// It only observes: worker and coordinator call the Observe hooks of their
// Config and never read metrics back. Per-job results stay in the report;
// these series are for watching a fleet live (rate(), histograms, busy).
package metrics

import (
	"time"

	"github.com/ferrylab/ferry/coordinator"
	"github.com/ferrylab/ferry/worker"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
)

// stageBuckets span 10us to ~84s in factor-2 steps: decode and encode sit
// at the low end, compute and transport of large batches at the high end.
// They are the classic buckets, for scrapers without native histograms;
// factor 4 made a p99 read from them off by up to 4x.
var stageBuckets = prometheus.ExponentialBuckets(10e-6, 2, 24)

// Native (sparse) histogram settings of the stage histograms, for a
// scraper that asks for them (Prometheus with native histograms on): a
// bucket factor of 1.1 puts a quantile within about 5% of the true value.
// Past 160 buckets the resolution is halved; a reset is tried after an
// hour at the earliest, so a long-lived coordinator's resolution comes back.
const (
	nativeBucketFactor = 1.1
	nativeMaxBuckets   = 160
	nativeMinReset     = time.Hour
)

// stageHistogram is the options every stage histogram shares: classic and
// native buckets together, so either kind of scraper reads it.
func stageHistogram(name, help string) prometheus.HistogramOpts {
	return prometheus.HistogramOpts{
		Name:                            name,
		Help:                            help,
		Buckets:                         stageBuckets,
		NativeHistogramBucketFactor:     nativeBucketFactor,
		NativeHistogramMaxBucketNumber:  nativeMaxBuckets,
		NativeHistogramMinResetDuration: nativeMinReset,
	}
}

// newRegistry returns a registry with the Go runtime and process collectors.
func newRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Worker is the metrics of one worker process.
type Worker struct {
	Registry *prometheus.Registry

	batches  *prometheus.CounterVec   // by outcome
	docs     *prometheus.CounterVec   // by outcome
	stage    *prometheus.HistogramVec // by stage
	inflight prometheus.Gauge
	busy     prometheus.Counter
}

// NewWorker registers the worker metrics on a new registry. start is when
// the worker started, for the busy fraction.
func NewWorker(start time.Time) *Worker {
	m := &Worker{
		Registry: newRegistry(),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_worker_batches_total",
			Help: "Batches answered, by outcome: ok, or the micro error code (400 bad batch, 413 result too large, 500).",
		}, []string{"outcome"}),
		docs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_worker_docs_total",
			Help: "Documents computed, by outcome: ok or failed (the workload failed on that document).",
		}, []string{"outcome"}),
		stage: prometheus.NewHistogramVec(stageHistogram("ferry_worker_stage_seconds",
			"Time per batch in each worker stage: queue (arrival to decode), decode, compute, encode."),
			[]string{"stage"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_worker_inflight_batches",
			Help: "Batches being computed now (0 or 1: a worker computes one at a time).",
		}),
		busy: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_worker_busy_seconds_total",
			Help: "Seconds spent decoding, computing and encoding; rate() of it is the busy fraction.",
		}),
	}
	busyFraction := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ferry_worker_busy_ratio",
		Help: "Busy seconds over seconds since the worker started.",
	}, func() float64 {
		up := time.Since(start).Seconds()
		if up <= 0 {
			return 0
		}
		return counterValue(m.busy) / up
	})
	m.Registry.MustRegister(m.batches, m.docs, m.stage, m.inflight, m.busy, busyFraction)
	// Zero series exist from the start, so rate() works before the first batch.
	m.batches.WithLabelValues("ok")
	for _, o := range []string{"ok", "failed"} {
		m.docs.WithLabelValues(o)
	}
	return m
}

// Observe is the worker.Config.Observe hook.
func (m *Worker) Observe(e worker.Event) {
	if e.Start {
		m.inflight.Inc()
		return
	}
	m.inflight.Dec()
	outcome := "ok"
	if e.Code != "" {
		outcome = e.Code
	}
	m.batches.WithLabelValues(outcome).Inc()
	if e.Code != "" {
		return
	}
	m.docs.WithLabelValues("ok").Add(float64(e.Docs - e.Failed))
	m.docs.WithLabelValues("failed").Add(float64(e.Failed))
	m.stage.WithLabelValues("queue").Observe(e.Queue.Seconds())
	m.stage.WithLabelValues("decode").Observe(e.Decode.Seconds())
	m.stage.WithLabelValues("compute").Observe(e.Compute.Seconds())
	m.stage.WithLabelValues("encode").Observe(e.Encode.Seconds())
	m.busy.Add((e.Decode + e.Compute + e.Encode).Seconds())
}

// Coordinator is the metrics of one coordinator process, across its jobs.
type Coordinator struct {
	Registry *prometheus.Registry

	batches  *prometheus.CounterVec // by outcome
	docs     *prometheus.CounterVec // by outcome
	retries  prometheus.Counter
	forged   prometheus.Counter
	stage    *prometheus.HistogramVec // by stage
	inflight prometheus.Gauge
	busy     *prometheus.CounterVec // by worker
}

// NewCoordinator registers the coordinator metrics on a new registry.
func NewCoordinator() *Coordinator {
	m := &Coordinator{
		Registry: newRegistry(),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_coordinator_batches_total",
			Help: "Batch attempts by outcome: ok, dupe (discarded, already done), retry, requeue (worker gone), split, failed.",
		}, []string{"outcome"}),
		docs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_coordinator_docs_total",
			Help: "Documents by outcome: ok (accepted), failed (failed for good), dupe (computed twice, second discarded).",
		}, []string{"outcome"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_coordinator_retries_total",
			Help: "Batches re-sent after an error reply or a timeout, so possibly computed twice (the report's retries; requeues of never-delivered batches are batches_total{outcome=\"requeue\"}).",
		}),
		forged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_coordinator_forged_discarded_total",
			Help: "Results dropped because they answered no batch in flight or did not carry its token (the report's forged_discarded): someone is answering batches they were not sent.",
		}),
		stage: prometheus.NewHistogramVec(stageHistogram("ferry_coordinator_stage_seconds",
			"Time per batch in each stage: encode, transport, queue (waiting in the worker), worker_decode, compute, worker_encode, decode, pipe (exec)."),
			[]string{"stage"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_coordinator_inflight_batches",
			Help: "Batches handed to workers and not yet answered.",
		}),
		busy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_coordinator_worker_busy_seconds_total",
			Help: "Seconds each worker spent on this coordinator's batches; rate() of it is that worker's busy fraction.",
		}, []string{"worker"}),
	}
	m.Registry.MustRegister(m.batches, m.docs, m.retries, m.forged, m.stage, m.inflight, m.busy)
	for _, o := range []string{"ok", "retry", "requeue", "failed"} {
		m.batches.WithLabelValues(o)
	}
	m.docs.WithLabelValues("ok")
	return m
}

// Observe is the coordinator.Config.Observe hook.
func (m *Coordinator) Observe(e coordinator.Event) {
	switch e.Kind {
	case coordinator.EventSent:
		m.inflight.Inc()
		return
	case coordinator.EventForged: // not a step of a batch in flight
		m.forged.Inc()
		return
	}
	m.inflight.Dec()
	m.batches.WithLabelValues(e.Kind.String()).Inc()
	switch e.Kind {
	case coordinator.EventOK:
		m.docs.WithLabelValues("ok").Add(float64(e.Docs - e.Failed))
		if e.Failed > 0 {
			m.docs.WithLabelValues("failed").Add(float64(e.Failed))
		}
		for s := range coordinator.NumStages {
			if d := e.Timing[s]; d > 0 {
				m.stage.WithLabelValues(s.String()).Observe(d.Seconds())
			}
		}
		if e.Worker != "" {
			m.busy.WithLabelValues(e.Worker).Add(e.Timing.Busy().Seconds())
		}
	case coordinator.EventDupe:
		m.docs.WithLabelValues("dupe").Add(float64(e.Docs))
	case coordinator.EventFailed:
		m.docs.WithLabelValues("failed").Add(float64(e.Docs))
	case coordinator.EventRetry: // requeues count under batches_total{outcome="requeue"}
		m.retries.Inc()
	}
}

// counterValue reads a counter's current value.
func counterValue(c prometheus.Counter) float64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		return 0
	}
	return d.GetCounter().GetValue()
}
