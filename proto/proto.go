// Package proto is ferry's wire: the Batch and Result types that cross the
// process boundary, the NATS subjects and headers they travel on, the codecs
// that turn them into msgpack bytes, and the limits every decoder enforces.
//
// It is not a transport: nothing here opens a connection. Every decoder here
// treats its input as hostile: a declared length longer than the bytes that
// remain is rejected before anything is allocated, nesting depth is bounded,
// and documents per batch and bytes per document have limits.
package proto

import (
	"encoding/hex"
	"errors"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ferrylab/ferry/workload"
)

// NATS names shared by workers and coordinators.
const (
	// ServiceName is the nats micro service every worker registers as, so
	// `nats micro ls` and $SRV.PING.ferry-worker find the fleet.
	ServiceName = "ferry-worker"
	// ServiceVersion is the micro service version (SemVer).
	ServiceVersion = "0.1.0"
	// WorkSubjectPrefix + "." + instance ID is each worker's own batch subject.
	// The coordinator addresses workers one by one, so it decides who gets
	// the next batch (pull-style credit dispatch) instead of a queue group's
	// random pick.
	WorkSubjectPrefix = "ferry.work"
	// WorkQueueSubject is served by every worker in the queue group
	// WorkQueueGroup: any-worker dispatch for external tools.
	WorkQueueSubject = "ferry.work.any"
	WorkQueueGroup   = "ferry-workers"
)

// Reply headers carrying the worker's own monotonic timings, in nanoseconds,
// so the coordinator can split a round trip into its stages.
const (
	// HeaderStagesNs is "<decode> <compute> <encode>" in nanoseconds, in
	// one header because every header line costs the coordinator about a
	// microsecond to parse (nats.go's DecodeHeadersMsg); an exec worker
	// adds " <pipe>" (AppendPipeStage), and a worker that measured its
	// queue adds " <pipe> <queue>" (AppendQueueStage, pipe 0 when not
	// exec). Earlier coordinators ignore the fields they do not know.
	HeaderStagesNs = "Ferry-Stages-Ns"

	// The one-header-per-stage form of earlier workers; coordinators still
	// read it when HeaderStagesNs is absent.
	HeaderDecodeNs  = "Ferry-Decode-Ns"
	HeaderComputeNs = "Ferry-Compute-Ns"
	HeaderEncodeNs  = "Ferry-Encode-Ns"

	HeaderWorker = "Ferry-Worker" // the worker's name

	HeaderCodec = "Ferry-Codec" // request: the codec of the batch; absent = packed

	// HeaderToken carries a batch's Token, in hex, where a message has no
	// body to carry it: a worker's error reply, and (dispatch=jetstream)
	// the batch message and every result published for it.
	HeaderToken = "Ferry-Token"
)

// MaxInFlight is the most batches a coordinator may have in flight to one
// worker: what a worker queues per subscription by default.
const MaxInFlight = 64

// AppendStages appends the HeaderStagesNs value for a worker's decode,
// compute and encode times to b.
func AppendStages(b []byte, decode, compute, encode time.Duration) []byte {
	b = strconv.AppendInt(b, int64(decode), 10)
	b = strconv.AppendInt(append(b, ' '), int64(compute), 10)
	return strconv.AppendInt(append(b, ' '), int64(encode), 10)
}

// ParseStages reads a HeaderStagesNs value: its first three fields, each
// a non-negative count of nanoseconds; a missing or bad field reads as zero.
func ParseStages(v string) (decode, compute, encode time.Duration) {
	var d [3]time.Duration
	for i := range d {
		var f string
		f, v, _ = strings.Cut(v, " ")
		if n, err := strconv.ParseInt(f, 10, 64); err == nil && n >= 0 {
			d[i] = time.Duration(n)
		}
	}
	return d[0], d[1], d[2]
}

// HeaderSize is the size h takes on the wire (NATS/1.0 header block), which
// counts toward the broker's max_payload with the body.
func HeaderSize(h map[string][]string) int {
	if len(h) == 0 {
		return 0
	}
	n := len("NATS/1.0\r\n") + len("\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(": ") + len(textproto.TrimString(v)) + len("\r\n")
		}
	}
	return n
}

// EchoSubject is where the transport floor's raw echo answers by default;
// spawners add a token of their own. It is under ferry.work so that a
// broker's worker role may serve it and its coordinator role may send to it.
const EchoSubject = WorkSubjectPrefix + ".echo"

// CoordinatorEchoPrefix + "." + login is where the transport floor's echo
// answers for a coordinator that brings no echo login of its own (ferry
// coordinator against an external broker): the echo logs in with the
// coordinator's own credentials, and a broker's coordinator role may serve
// and send to its own login's echo subjects, and no one else's (see
// broker.RoleCoordinator). Outside ferry.work, so a coordinator still
// subscribes to no work subject.
const CoordinatorEchoPrefix = "ferry.echo"

// CoordinatorEchoSubject is the echo subject of the coordinator logged in as
// login; spawners add a token of their own.
func CoordinatorEchoSubject(login string) string { return CoordinatorEchoPrefix + "." + login }

// A worker's address is <login>.<micro instance ID>: its batch subject is
// WorkSubject(address), ferry.work.<login>.<id>, so a broker can let each
// login read only its own workers' batches (see broker.RoleWorker). The
// login is the NATS user name or public nkey the worker connects with
// (natsconn.Login), AnonymousLogin without one.

// AnonymousLogin names the subjects of a client with no user name or nkey
// (anonymous, a token, a .creds file).
const AnonymousLogin = "_"

var loginPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidLogin reports whether name can be a login in ferry's subjects: one
// subject token of letters, digits, '-' and '_', at most 64 bytes (a
// public nkey is 56).
func ValidLogin(name string) bool { return loginPattern.MatchString(name) }

// WorkSubject is the batch subject of the worker at addr (<login>.<id>).
func WorkSubject(addr string) string { return WorkSubjectPrefix + "." + addr }

// WorkAddr is the address of the worker with micro instance ID id,
// connected as login.
func WorkAddr(login, id string) string { return login + "." + id }

// ParseWorkSubject returns the address in subject when it is the batch
// subject of the worker with instance ID id: ferry.work.<login>.<id> with
// a valid login.
func ParseWorkSubject(subject, id string) (addr string, ok bool) {
	addr, ok = strings.CutPrefix(subject, WorkSubjectPrefix+".")
	if !ok {
		return "", false
	}
	login, rest, ok := strings.Cut(addr, ".")
	if !ok || rest != id || !ValidLogin(login) {
		return "", false
	}
	return addr, true
}

// AddrLogin is the login part of a worker address (all of it when it has
// no dot).
func AddrLogin(addr string) string {
	login, _, _ := strings.Cut(addr, ".")
	return login
}

// InboxPrefix is the reply inbox prefix of a client connected as login:
// _INBOX.<login>, so a broker can let each login read only its own inbox.
func InboxPrefix(login string) string { return "_INBOX." + login }

// ReplyInbox is where a coordinator whose inbox prefix is inbox takes the
// replies of workers connected as login: <inbox>.to.<login>. A broker
// lets that login publish there (_INBOX.*.to.<login>.>) and nowhere else
// in anyone's inbox.
func ReplyInbox(inbox, login string) string { return inbox + ".to." + login }

// Token is a batch's secret for one send: 16 random bytes that only the
// batch's recipient sees and its result must carry back. A coordinator
// drops any result that does not, so no one who did not receive a batch
// can answer it, whoever may publish on the reply subject.
type Token [16]byte

// String is t in hex, as HeaderToken carries it.
func (t Token) String() string { return hex.EncodeToString(t[:]) }

// Batch is a run of consecutive documents of one job sent to a worker.
type Batch struct {
	ID       uint64          `msgpack:"id"`       // unique within a job
	Attempt  uint32          `msgpack:"attempt"`  // 1 for the first send
	Token    Token           `msgpack:"token"`    // this send's secret; the result must carry it back
	Workload string          `msgpack:"workload"` // workload registry name
	Params   workload.Params `msgpack:"params"`   // workload parameters
	First    int64           `msgpack:"first"`    // input index of Docs[0]
	Docs     []string        `msgpack:"docs"`     // document texts, in input order
}

// TextBytes is the size of the batch's document texts.
func (b *Batch) TextBytes() int {
	n := 0
	for _, d := range b.Docs {
		n += len(d)
	}
	return n
}

// DocError is a failure of one document of a batch (workload.Compute
// lists them; the wire carries them).
type DocError = workload.DocError

// Result is a worker's answer to a Batch.
type Result struct {
	BatchID uint64          `msgpack:"batch_id"`
	Attempt uint32          `msgpack:"attempt"`
	Token   Token           `msgpack:"token"` // the batch's, echoed
	Out     workload.Output `msgpack:"out"`
	Errs    []DocError      `msgpack:"errs"` // documents that failed; their rows are zero
}

// DefaultMaxDocBytes is the largest document a decoder accepts by default.
const DefaultMaxDocBytes = 1 << 20

// Limits bound what a decoder accepts and what a worker computes and keeps
// (see Limits.Workload). The zero value of a field means its default.
type Limits struct {
	MaxDocs     int // documents per batch; 0 = 100,000
	MaxDocBytes int // bytes per document; 0 = 1 MiB
	MaxDepth    int // msgpack nesting depth; 0 = 16
	// MaxResultBytes bounds a batch's result, checked before it is
	// computed; 0 = the broker's max_payload only.
	MaxResultBytes int64
	// CacheBytes bounds the workloads a worker keeps built (infer's
	// weights); 0 = workload.DefaultCacheBytes.
	CacheBytes int64
}

// WithDefaults returns l with zero fields set to their defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxDocs <= 0 {
		l.MaxDocs = 100_000
	}
	if l.MaxDocBytes <= 0 {
		l.MaxDocBytes = DefaultMaxDocBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = 16
	}
	return l
}

// Errors returned by decoders; wrapped with the field being decoded.
var (
	ErrTruncated = errors.New("proto: message truncated")
	ErrMalformed = errors.New("proto: malformed message")
	ErrLimit     = errors.New("proto: limit exceeded")
)
