package coordinator

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/ferrylab/ferry/proto"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"
)

// This file holds what a jetstream job keeps in the broker: its streams and
// consumer, its fingerprint, the listing and reuse of stored results, the
// watch for workers and for a lost store, and the clean-up.

// resultsMaxAge bounds how long an unfinished job's results are kept for a
// resume; a finished job's results are purged at once.
const resultsMaxAge = 24 * time.Hour

// sharedConsumer is the one consumer of every job's batches that ferry used
// before each job had its own. A work queue lets one consumer take a
// subject, so it is removed.
const sharedConsumer = "ferry-workers"

// storeLostChecks is how many checks in a row, a second apart, must find
// the job's stream or consumer gone before the job ends with ErrStoreLost.
const storeLostChecks = 3

// Fingerprint keys in the job consumer's metadata.
const (
	fpWorkload = "ferry_workload"
	fpParams   = "ferry_params" // JSON, by config key
	fpCodec    = "ferry_codec"
	fpInput    = "ferry_input" // digest of the input's first document
)

// fingerprint is what a job's stored results depend on. It is kept with the
// job (its consumer's metadata), so a run with the same job ID and another
// workload, params, codec or input is refused, not fed stale results.
type fingerprint map[string]string

func (j *JetStream) fingerprint(head string) (fingerprint, error) {
	b, err := msgpack.Marshal(j.cfg.Params.WithDefaults())
	if err != nil {
		return nil, fmt.Errorf("fingerprint params: %w", err)
	}
	var byKey map[string]any // the config keys, from the wire tags
	if err := msgpack.Unmarshal(b, &byKey); err != nil {
		return nil, fmt.Errorf("fingerprint params: %w", err)
	}
	params, err := json.Marshal(byKey)
	if err != nil {
		return nil, fmt.Errorf("fingerprint params: %w", err)
	}
	return fingerprint{
		fpWorkload: j.cfg.Workload,
		fpParams:   string(params),
		fpCodec:    j.codec.Name(),
		fpInput:    docsDigest([]string{head}),
	}, nil
}

// diff names what differs between the job's stored fingerprint and f; ""
// when nothing does.
func (f fingerprint) diff(stored map[string]string) string {
	var d []string
	for _, k := range []struct{ key, name string }{{fpWorkload, "workload"}, {fpCodec, "codec"}} {
		if a, b := stored[k.key], f[k.key]; a != b {
			d = append(d, fmt.Sprintf("%s: stored %q, now %q", k.name, a, b))
		}
	}
	var was, now map[string]any
	_ = json.Unmarshal([]byte(stored[fpParams]), &was) // a missing or bad entry differs in every key
	_ = json.Unmarshal([]byte(f[fpParams]), &now)
	keys := make([]string, 0, len(was)+len(now))
	for k := range was {
		keys = append(keys, k)
	}
	for k := range now {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range slices.Compact(keys) {
		if a, b := fmt.Sprint(was[k]), fmt.Sprint(now[k]); a != b {
			d = append(d, fmt.Sprintf("params %s: stored %s, now %s", k, a, b))
		}
	}
	if stored[fpInput] != f[fpInput] {
		d = append(d, "input: the first document differs")
	}
	return strings.Join(d, "; ")
}

// docsDigest identifies a batch's documents: a 64-bit xxHash over their
// lengths and bytes.
func docsDigest(docs []string) string {
	h := xxhash.New()
	var n [8]byte
	for _, d := range docs {
		binary.LittleEndian.PutUint64(n[:], uint64(len(d)))
		h.Write(n[:])
		h.WriteString(d)
	}
	return strconv.FormatUint(h.Sum64(), 16)
}

// setup creates or updates the two streams and the job's consumer, after
// checking the job's fingerprint (head is the input's first document): a
// mismatch is refused before anything of the job is changed.
func (j *JetStream) setup(ctx context.Context, head string) error {
	var err error
	j.batches, err = j.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        proto.BatchStream,
		Description: "ferry batches waiting for a worker (work queue: removed on ack)",
		Subjects:    []string{proto.BatchSubjectPrefix + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
	})
	if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
		return ErrNoJetStream
	}
	if err != nil {
		return fmt.Errorf("jetstream: batch stream: %w", err)
	}
	j.results, err = j.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              proto.ResultStream,
		Description:       "ferry results by job and document range",
		Subjects:          []string{proto.ResultSubjectPrefix + ".>"},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		MaxMsgsPerSubject: 1,
		MaxAge:            resultsMaxAge,
		Duplicates:        2 * time.Minute,
		AllowDirect:       true,
	})
	if err != nil {
		return fmt.Errorf("jetstream: result stream: %w", err)
	}
	switch err := j.js.DeleteConsumer(ctx, proto.BatchStream, sharedConsumer); {
	case err == nil:
		j.log.Warn("removed the consumer every job shared in earlier ferry versions; each job has its own now", "consumer", sharedConsumer)
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return fmt.Errorf("jetstream: remove the shared consumer %s: %w", sharedConsumer, err)
	}
	fp, err := j.fingerprint(head)
	if err != nil {
		return err
	}
	name := proto.JobConsumer(j.job)
	switch c, err := j.js.Consumer(ctx, proto.BatchStream, name); {
	case err == nil:
		if diff := fp.diff(c.CachedInfo().Config.Metadata); diff != "" {
			return fmt.Errorf("%w: job %s: %s; run it with the settings and input it started with, or use another job ID", ErrResumeMismatch, j.job, diff)
		}
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		j.fresh = true
	default:
		return fmt.Errorf("jetstream: job consumer %s: %w", name, err)
	}
	j.workers, err = j.js.CreateOrUpdateConsumer(ctx, proto.BatchStream, jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "ferry job " + j.job + ": its batches, one at a time per worker",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       j.ackWait,
		MaxDeliver:    j.maxDeliver,
		FilterSubject: proto.BatchSubjectPrefix + "." + j.job + ".>",
		MaxAckPending: -1,
		Metadata:      fp,
	})
	if err != nil {
		return fmt.Errorf("jetstream: job consumer %s: %w", name, err)
	}
	return nil
}

// index drops the job's batches a previous run left unacknowledged (they
// are sent again unless their result is already stored) and lists the
// ranges whose results are stored. It returns the results stream sequence
// to follow live results from: taken before the listing, so a result is
// either listed or delivered (or both, harmlessly). Results of a job
// without a fingerprint are of unknown origin and dropped.
func (j *JetStream) index(ctx context.Context, q *Queue) (uint64, error) {
	results := proto.ResultSubjectPrefix + "." + j.job + ".>"
	if err := j.batches.Purge(ctx, jetstream.WithPurgeSubject(proto.BatchSubjectPrefix+"."+j.job+".>")); err != nil {
		return 0, fmt.Errorf("jetstream: drop the job's stale batches: %w", err)
	}
	info, err := j.results.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("jetstream: result stream info: %w", err)
	}
	from := info.State.LastSeq + 1
	info, err = j.results.Info(ctx, jetstream.WithSubjectFilter(results))
	if err != nil {
		return 0, fmt.Errorf("jetstream: list the job's results: %w", err)
	}
	if j.fresh {
		if n := len(info.State.Subjects); n > 0 {
			j.log.Warn("the job's stored results have no fingerprint (an earlier ferry, or its consumer was deleted); computing the job afresh", "job_id", j.job, "results", n)
			if err := j.results.Purge(ctx, jetstream.WithPurgeSubject(results)); err != nil {
				return 0, fmt.Errorf("jetstream: drop the job's unfingerprinted results: %w", err)
			}
		}
		return from, nil
	}
	for subj := range info.State.Subjects {
		_, first, n, err := proto.ParseBatchSubject(subj)
		if err != nil || !j.fits(q, first, n) {
			j.reject(q, subj, "impossible range for this job")
			continue
		}
		j.stored[first] = n
	}
	return from, nil
}

// errNotComputed is a stored result that says its batch was never
// computed (handed back by a stopping worker).
var errNotComputed = errors.New("stored result: the batch was handed back, not computed")

// resume completes t from its stored result, if that result was computed
// from t's very documents.
func (j *JetStream) resume(ctx context.Context, q *Queue, t *Task) error {
	subj := proto.ResultSubject(j.job, t.Batch.First, len(t.Batch.Docs))
	m, err := j.results.GetLastMsgForSubject(ctx, subj)
	if err != nil {
		return fmt.Errorf("read stored result %s: %w", subj, err)
	}
	if m.Header.Get(proto.HeaderDocsDigest) != docsDigest(t.Batch.Docs) {
		j.reject(q, subj, "stored result computed from other documents (the input changed?)")
		return fmt.Errorf("stored result %s: %w: other documents", subj, ErrResumeMismatch)
	}
	if m.Header.Get(proto.HeaderError) != "" {
		// Handed back uncomputed, or a give-up: anyone with a worker login
		// may publish one, and the token of a previous run's batch is
		// gone, so it is computed again rather than taken on trust.
		return errNotComputed
	}
	codec, err := j.codecFor(m.Header)
	if err != nil {
		j.reject(q, subj, err.Error())
		return fmt.Errorf("stored result %s: %w", subj, err)
	}
	res := &proto.Result{}
	if err := codec.DecodeResult(m.Data, res); err != nil {
		j.reject(q, subj, "undecodable: "+err.Error())
		return fmt.Errorf("decode stored result %s: %w", subj, err)
	}
	res.BatchID, res.Attempt = t.Batch.ID, t.Batch.Attempt // the range is the key; IDs are per run
	if err := checkShape(t, res); err != nil {
		j.reject(q, subj, err.Error())
		return fmt.Errorf("stored result %s: %w", subj, err)
	}
	j.resumed.Add(1)
	q.Complete(t, Result{Res: res, BytesIn: len(m.Data)}) // no worker: nothing computed in this run
	return nil
}

// watch checks the job's consumer once a second. It returns ErrStoreLost
// once the job's stream or consumer has been missing for storeLostChecks
// checks in a row, and gives up on batches a worker took and never
// answered (expire).
// It says once when batches wait and no worker is pulling (the consumer
// has neither waiting pulls nor unacknowledged batches for three checks),
// says again when workers are back, and returns ErrNoWorkers after
// WorkerWait without any; the batches stay queued and the job can be
// resumed with its ID. It returns nil when ctx ends.
func (j *JetStream) watch(ctx context.Context, q *Queue) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	idle, lost := 0, 0
	var alone time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		info, err := j.workers.Info(ctx)
		if err == nil {
			_, err = j.results.Info(ctx)
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) {
			if lost++; lost >= storeLostChecks {
				return fmt.Errorf("%w: job %s: %v (the stream was deleted, or the broker lost its store): its queued batches and stored results are gone; run the job again", ErrStoreLost, j.job, err)
			}
			continue
		}
		lost = 0
		if err != nil {
			continue // the broker may be restarting
		}
		j.expire(q, info.Delivered.Stream)
		j.mu.Lock()
		waiting := len(j.pending) > 0
		j.mu.Unlock()
		if !waiting || info.NumWaiting > 0 || info.NumAckPending > 0 {
			if !alone.IsZero() {
				j.log.Info("workers pulling batches again; resuming", "after", time.Since(alone).Round(time.Millisecond))
			}
			idle, alone = 0, time.Time{}
			continue
		}
		switch idle++; {
		case idle == 3:
			alone = time.Now()
			j.log.Warn("no workers pulling batches; waiting (are workers running with --dispatch jetstream?)", "up_to", j.cfg.WorkerWait)
		case idle > 3 && time.Since(alone) > j.cfg.WorkerWait:
			return fmt.Errorf("%w: none pulled batches for %s; the job's batches stay queued (job %s)", ErrNoWorkers, j.cfg.WorkerWait, j.job)
		}
	}
}

// expire is the coordinator's own deadline for a batch a worker has taken:
// the workers' deadlines and AckWait bound every honest delivery, so a
// batch still unanswered long after (a worker that vouches for a batch it
// never computes) is given up on and halved, as a poison batch is.
// delivered is the last stream sequence the job's consumer delivered: it
// delivers in stream order, so a batch at or below it has been taken.
func (j *JetStream) expire(q *Queue, delivered uint64) {
	now := time.Now()
	type late struct {
		p      *jsTask
		budget time.Duration
	}
	var expired []late
	j.mu.Lock()
	for subj, p := range j.pending {
		if p.seq == 0 || p.seq > delivered {
			continue
		}
		if p.taken.IsZero() {
			p.taken = now
			continue
		}
		// Each delivery up to the poison one may wait a deadline fetched
		// ahead, compute for a deadline and wait AckWait for the next.
		budget := time.Duration(j.cfg.MaxAttempts+1) * (2*p.deadline + j.ackWait)
		if now.Sub(p.taken) > budget {
			delete(j.pending, subj)
			delete(j.prior, p.t)
			expired = append(expired, late{p, budget})
		}
	}
	if len(expired) > 0 {
		close(j.changed)
		j.changed = make(chan struct{})
	}
	j.mu.Unlock()
	for _, e := range expired {
		j.log.Warn("no result for a batch a worker took; halving it", "job_id", j.job, "first", e.p.t.Batch.First, "docs", len(e.p.t.Batch.Docs), "after", e.budget)
		q.GiveUp(e.p.t, fmt.Errorf("no result within %s of its delivery", e.budget))
	}
}

// finish drops the finished job: its results (the output is written),
// batches sent twice and not needed, and its consumer. A run with the same
// ID is a new job.
func (j *JetStream) finish() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := j.results.Purge(ctx, jetstream.WithPurgeSubject(proto.ResultSubjectPrefix+"."+j.job+".>")); err != nil {
		j.log.Warn("purge the finished job's results", "job_id", j.job, "err", err)
	}
	if err := j.batches.Purge(ctx, jetstream.WithPurgeSubject(proto.BatchSubjectPrefix+"."+j.job+".>")); err != nil {
		j.log.Warn("purge the finished job's batches", "job_id", j.job, "err", err)
	}
	if err := j.js.DeleteConsumer(ctx, proto.BatchStream, proto.JobConsumer(j.job)); err != nil {
		j.log.Warn("delete the finished job's consumer", "job_id", j.job, "err", err)
	}
}
