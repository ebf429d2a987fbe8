package proto

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// JetStream names for durable dispatch (dispatch=jetstream). Batches are
// messages on a work-queue stream, one subject per batch:
//
//	ferry.batch.<job>.<first>-<count>
//
// and each result goes to the results stream on the matching subject
//
//	ferry.result.<job>.<first>-<count>
//
// so a restarted coordinator finds a job's finished batches by subject,
// whatever batch IDs the previous run used. Each job has its own durable
// pull consumer on the batch stream (JobConsumer), so its AckWait and
// MaxDeliver are its own; workers pull from every job's consumer.
const (
	BatchStream  = "FERRY_BATCHES" // work queue: a batch is removed when a worker acks it
	ResultStream = "FERRY_RESULTS" // results, latest per batch subject

	// JobConsumerPrefix starts the name of every job's consumer of
	// BatchStream: workers pull from the consumers named so.
	JobConsumerPrefix = "ferry-job-"
	// JobCreatedAdvisory is the server's advisory when a consumer of
	// BatchStream is created: workers listen, to serve a new job at once.
	JobCreatedAdvisory = "$JS.EVENT.ADVISORY.CONSUMER.CREATED." + BatchStream + ".*"

	BatchSubjectPrefix  = "ferry.batch"
	ResultSubjectPrefix = "ferry.result"

	// HeaderDelivery carries the JetStream delivery count of the batch a
	// result answers: above 1, the batch was executed more than once.
	HeaderDelivery = "Ferry-Delivery"
	// HeaderMaxAttempts on a batch is how many deliveries a worker may
	// compute; a worker handed a later delivery publishes a give-up result
	// and terminates the message instead (it kills or hangs its workers).
	HeaderMaxAttempts = "Ferry-Max-Attempts"
	// HeaderError on a result marks it as a failure of the whole batch, with
	// the reason: "413 ..." (result too large: split it), "400 ..." (bad
	// batch) or "poison ..." (MaxAttempts deliveries without a result), or
	// says the batch was not computed at all: "503 ..." (a stopping worker
	// handed it back; send it again, it is no attempt).
	HeaderError = "Ferry-Error"
	// HeaderDeadline on a batch is how long, in nanoseconds, a worker may
	// compute it. A worker still computing it then stops vouching for it
	// and exits: a hung document is isolated like one that crashes.
	HeaderDeadline = "Ferry-Deadline-Ns"
	// HeaderPriorDeliveries on a batch is how many deliveries of its
	// earlier messages came to nothing (their workers hung or died) before
	// a worker handed it back uncomputed and the coordinator sent it again.
	// A worker adds them to the delivery count it checks against
	// HeaderMaxAttempts: a hand-back does not wipe out a batch's history.
	HeaderPriorDeliveries = "Ferry-Prior-Deliveries"
	// HeaderDocsDigest on a batch is a digest of its documents, which the
	// worker copies onto the result: a resumed job takes a stored result
	// only for the same documents.
	HeaderDocsDigest = "Ferry-Docs-Digest"

	// MaxDeadline bounds HeaderDeadline: a day, far above any batch.
	MaxDeadline = 24 * time.Hour
)

// Error codes: the first word of a HeaderError.
const (
	ErrCodeBadBatch = "400"    // the batch did not decode or names an unknown workload: not cured by redelivery
	ErrCodeTooLarge = "413"    // the result is over the payload limit: split the batch
	ErrCodeHandBack = "503"    // a stopping worker handed the batch back uncomputed: send it again, no attempt counted
	ErrCodePoison   = "poison" // MaxAttempts deliveries came to nothing: halve the batch
)

// HandBackReason is the HeaderError of a batch a stopping worker handed back.
const HandBackReason = ErrCodeHandBack + " worker stopping: batch handed back, not computed"

// maxSubjectDigits is how many digits MaxInt64 has.
const maxSubjectDigits = 19

// ErrBadSubject is returned for a subject that is not a ferry batch or
// result subject.
var ErrBadSubject = errors.New("proto: not a ferry batch subject")

// JobConsumer is the name of job's consumer of BatchStream.
func JobConsumer(job string) string { return JobConsumerPrefix + job }

var jobIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidJobID reports whether id can be a job ID: one NATS subject token of
// letters, digits, '-' and '_', at most 64 bytes.
func ValidJobID(id string) bool { return jobIDPattern.MatchString(id) }

// BatchSubject is the subject of job's batch of count documents from first.
func BatchSubject(job string, first int64, count int) string {
	return fmt.Sprintf("%s.%s.%d-%d", BatchSubjectPrefix, job, first, count)
}

// ResultSubject is the subject of job's result for the same batch.
func ResultSubject(job string, first int64, count int) string {
	return fmt.Sprintf("%s.%s.%d-%d", ResultSubjectPrefix, job, first, count)
}

// ParseBatchSubject splits a batch or result subject into its job and range.
// It accepts only what BatchSubject and ResultSubject write: a valid job ID,
// decimal numbers without sign or leading zeros, count at least 1 and
// first+count within int64. Whether the range belongs to a job is for the
// caller to check against the job (its document count, its batch limit).
func ParseBatchSubject(subject string) (job string, first int64, count int, err error) {
	bad := func() (string, int64, int, error) { return "", 0, 0, fmt.Errorf("%w: %q", ErrBadSubject, subject) }
	parts := strings.Split(subject, ".")
	if len(parts) != 4 || parts[0] != "ferry" || (parts[1] != "batch" && parts[1] != "result") || !ValidJobID(parts[2]) {
		return bad()
	}
	a, b, ok := strings.Cut(parts[3], "-")
	if !ok || !canonical(a) || !canonical(b) {
		return bad()
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	n, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || n <= 0 || n > math.MaxInt32 || first > math.MaxInt64-n {
		return bad()
	}
	return parts[2], first, int(n), nil
}

// canonical reports whether s is a number as strconv writes it: digits
// only, no leading zero, at most 19 of them. Any other spelling would be a
// second subject for the same range.
func canonical(s string) bool {
	if s == "" || len(s) > maxSubjectDigits || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ParseDeadline reads a batch's HeaderDeadline: 0 when it is absent, an
// error when it is not a duration between 1ns and MaxDeadline.
func ParseDeadline(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	ns, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ns <= 0 || ns > int64(MaxDeadline) {
		return 0, fmt.Errorf("%w: %s %q: want 1 to %d nanoseconds", ErrMalformed, HeaderDeadline, v, int64(MaxDeadline))
	}
	return time.Duration(ns), nil
}
