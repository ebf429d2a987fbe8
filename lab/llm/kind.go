package llm

import (
	"context"
	"errors"
	"net"
	"strconv"
	"syscall"
)

// Error kinds returned by ErrorKind, for counting a run's failures by cause.
const (
	KindPromptTooLarge = "prompt_too_large" // rejected before sending (ClientConfig.MaxPromptBytes)
	KindBadResponse    = "bad_response"     // 2xx with garbage JSON, no choices or too big
	KindTimeout        = "timeout"          // an attempt or the call's context timed out
	KindRefused        = "refused"          // connection refused: nothing listens there
	KindConnection     = "connection"       // other network errors: reset, DNS, TLS
	KindCanceled       = "canceled"         // the run was interrupted
	KindOther          = "other"
)

// ErrorKind names the cause of an error returned by Complete: one of the
// Kind constants, or "http_<status>" for a non-2xx reply (http_429,
// http_500, ...). nil gives "".
func ErrorKind(err error) string {
	if err == nil {
		return ""
	}
	if se, ok := errors.AsType[*StatusError](err); ok {
		return "http_" + strconv.Itoa(se.Code)
	}
	var nerr net.Error
	switch {
	case errors.Is(err, ErrPromptTooLarge):
		return KindPromptTooLarge
	case errors.Is(err, ErrBadResponse):
		return KindBadResponse
	case errors.Is(err, context.Canceled):
		return KindCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		return KindTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindRefused
	case errors.As(err, &nerr):
		return KindConnection
	}
	if _, ok := errors.AsType[*net.OpError](err); ok {
		return KindConnection
	}
	return KindOther
}

// Tally counts what Stats does not: errors by kind, the first error, and
// tokens. Its Add has Run's onResult signature; like onResult it is not
// safe for concurrent use (Run serializes the calls).
type Tally struct {
	ByKind           map[string]int64 // errors per ErrorKind
	FirstError       string           // "call <i>: <error>" of the lowest-numbered failed call
	firstIndex       int
	PromptTokens     int64 // usage.prompt_tokens summed over successful calls
	CompletionTokens int64 // usage.completion_tokens summed over successful calls
}

// Add records one call's outcome.
func (t *Tally) Add(i int, comp Completion, err error) {
	if err == nil {
		t.PromptTokens += int64(comp.PromptTokens)
		t.CompletionTokens += int64(comp.CompletionTokens)
		return
	}
	if t.ByKind == nil {
		t.ByKind = map[string]int64{}
	}
	t.ByKind[ErrorKind(err)]++
	if t.FirstError == "" || i < t.firstIndex {
		t.FirstError, t.firstIndex = "call "+strconv.Itoa(i)+": "+err.Error(), i
	}
}
