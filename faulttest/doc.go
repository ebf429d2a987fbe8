// Package faulttest is ferry's fault-injection suite: it runs real
// `ferry worker` OS processes against an embedded NATS server, drives
// coordinator.Run through them, injects faults (SIGKILL of random workers,
// SIGSTOP past the deadline then SIGCONT, a broker restart, a document that
// panics the workload, a document that kills its worker, SIGTERM of half the
// fleet, no workers at all) and checks the full result set the Jepsen way:
// every input document attempted, completed, lost, duplicated or unexpected.
//
// It holds only tests. The short suite runs in CI (go test ./faulttest);
// -faults.long runs bigger jobs with more faults, and -faults.seed picks the
// seeded schedule (which documents, which workers, when), so a failure can be
// replayed. See docs/faults.md.
package faulttest
