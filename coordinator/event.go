package coordinator

// EventKind is what happened to a batch.
type EventKind int

// Every batch a backend takes (EventSent) ends in exactly one of the other
// kinds, so sent minus the rest is the number of batches in flight.
const (
	EventSent    EventKind = iota // handed to a backend lane
	EventOK                       // result accepted
	EventDupe                     // result or failure discarded: its documents were already done
	EventRetry                    // attempt failed (error reply, timeout); re-sent after backoff
	EventRequeue                  // never reached a worker (it was gone); re-sent, no attempt counted
	EventSplit                    // halved: over the payload limit, or kept failing
	EventFailed                   // a single document failed for good

	// EventForged is no step of a batch: a result was dropped because it
	// answered no batch in flight or lacked its token. One per result.
	EventForged
)

var eventNames = [...]string{"sent", "ok", "dupe", "retry", "requeue", "split", "failed", "forged"}

func (k EventKind) String() string { return eventNames[k] }

// Event is one step of a batch, told to Config.Observe.
type Event struct {
	Kind   EventKind
	Docs   int    // documents in the batch
	Failed int    // EventOK: documents the workload failed on
	Timing Timing // EventOK: the measured stages
	Worker string // EventOK: who computed it
}

func (q *Queue) observe(k EventKind, t *Task) {
	if q.cfg.Observe != nil {
		q.cfg.Observe(Event{Kind: k, Docs: len(t.Batch.Docs)})
	}
}
