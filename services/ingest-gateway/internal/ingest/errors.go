package ingest

import (
	"errors"
	"fmt"
	"time"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/publish"
)

// Kind is what a failed submission is. This package alone decides it; the front ends only
// translate a kind to their protocol (an HTTP status and problem type, a gRPC code and
// details). The set is closed: Kinds lists it, and each front end's tests check that every
// kind has its mapping.
type Kind int

const (
	// KindInternal is a failure the gateway cannot explain (a bug, an unclassified error).
	// Nothing is known about the events; retrying with the same event ids is safe.
	KindInternal Kind = iota
	// KindInvalid: the batch is invalid (Violations name every problem of every event, or
	// the batch itself for an empty one). Nothing was sent; the same batch will fail again.
	KindInvalid
	// KindTooLarge: the batch has more events than one request may carry. Nothing was sent.
	KindTooLarge
	// KindBusy: the gateway holds as many batches or bytes in flight as it may. Nothing was
	// sent (over HTTP, the body was not even read); retry after RetryAfter.
	KindBusy
	// KindStreamUnavailable: the stream did not acknowledge every event within the retry
	// budget. Results say which events it acknowledged; the others may or may not be stored.
	// Retrying the whole batch with the same ids (Results carry those the gateway assigned)
	// after RetryAfter is safe.
	KindStreamUnavailable
	// KindStreamRejected: the stream refused events for a reason retrying cannot fix until an
	// operator acts (stream missing, access denied, KMS key disabled). Results say which
	// events it acknowledged before that: the batch is at most partially accepted.
	KindStreamRejected
	// KindUnauthenticated: the request has no credential or a bad one. Nothing was read
	// beyond the headers; the same request will fail again.
	KindUnauthenticated
	// KindForbidden: the producer lacks the scope for an event (ingest for stat lines,
	// retract for retractions) or sends a source it does not own. Nothing was sent.
	KindForbidden
	// KindOverQuota: the producer is over its events/s or bytes/s quota. Nothing was sent;
	// retry after RetryAfter.
	KindOverQuota

	kindCount // not a kind: the size of the set
)

// Kinds returns every kind, for front ends to check their mappings against.
func Kinds() []Kind {
	kinds := make([]Kind, 0, kindCount)
	for k := range kindCount {
		kinds = append(kinds, k)
	}
	return kinds
}

func (k Kind) String() string {
	switch k {
	case KindInternal:
		return "internal"
	case KindInvalid:
		return "invalid"
	case KindTooLarge:
		return "too_large"
	case KindBusy:
		return "busy"
	case KindStreamUnavailable:
		return "stream_unavailable"
	case KindStreamRejected:
		return "stream_rejected"
	case KindUnauthenticated:
		return "unauthenticated"
	case KindForbidden:
		return "forbidden"
	case KindOverQuota:
		return "quota"
	default:
		return fmt.Sprintf("Kind(%d)", int(k))
	}
}

// Violation is one problem with one event of a batch.
type Violation struct {
	// Index is the event's position in the batch; BatchIndex when the problem is the
	// batch's as a whole (it has no events).
	Index int
	// EventID is the event's id as the client sent it (empty when it sent none).
	EventID string
	statevent.Violation
}

// BatchIndex is the Index of a violation of the batch as a whole.
const BatchIndex = -1

// Result is the fate of one event of a published batch.
type Result struct {
	// Index is the event's position in the batch.
	Index int
	// EventID is the event's id: the client's, or the one the gateway assigned.
	EventID string
	// ShardID and SequenceNumber are where the stream put the event; both are empty for an
	// event the stream did not acknowledge.
	ShardID        string
	SequenceNumber string
	// ErrorCode is the stream's last error for an event it did not acknowledge.
	ErrorCode string
}

// Acknowledged reports whether the stream acknowledged the event.
func (r Result) Acknowledged() bool { return r.ShardID != "" && r.SequenceNumber != "" }

// Error is every failure of Reserve and Submit: its Kind and what a client needs to act on it.
type Error struct {
	Kind Kind
	// RetryAfter is how long to wait before retrying (KindBusy, KindStreamUnavailable,
	// KindOverQuota).
	RetryAfter time.Duration
	// Results has one entry per event of the batch, in batch order, when the stream was
	// involved (KindStreamUnavailable, KindStreamRejected).
	Results []Result
	// Violations lists every problem of the batch (KindInvalid).
	Violations []Violation
	// Err is the underlying error.
	Err error
}

func (e *Error) Error() string {
	switch e.Kind {
	case KindInvalid:
		events := map[int]bool{}
		for _, v := range e.Violations {
			events[v.Index] = true
		}
		if len(e.Violations) == 0 {
			return "invalid batch"
		}
		first := e.Violations[0]
		if first.Index == BatchIndex && len(e.Violations) == 1 {
			return "invalid batch: " + first.Detail
		}
		return fmt.Sprintf("%d invalid events (%d violations), first: event %d: %s", len(events), len(e.Violations), first.Index, first.Violation)
	case KindTooLarge:
		if e.Err != nil {
			return e.Err.Error()
		}
		return "the batch has too many events"
	case KindStreamUnavailable, KindStreamRejected:
		return fmt.Sprintf("%s: %d of %d events acknowledged: %v", e.Kind, e.Acknowledged(), len(e.Results), e.Err)
	default:
		if e.Err == nil {
			return e.Kind.String()
		}
		return fmt.Sprintf("%s: %v", e.Kind, e.Err)
	}
}

func (e *Error) Unwrap() error { return e.Err }

// Acknowledged counts the events of Results the stream acknowledged.
func (e *Error) Acknowledged() int {
	n := 0
	for _, r := range e.Results {
		if r.Acknowledged() {
			n++
		}
	}
	return n
}

// KindOf is the kind of err: that of the *Error it wraps, or KindInternal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// classify says what a failure of the publisher is for the client. events are the batch
// (nil when nothing was read yet), to name an event whose record is too large.
func classify(err error, events []*statsv1.StatEvent) *Error {
	var (
		busy        *publish.BusyError
		unavailable *publish.UnavailableError
		rejected    *publish.RejectedError
		tooLarge    *publish.RecordTooLargeError
	)
	switch {
	case errors.As(err, &busy):
		return &Error{Kind: KindBusy, RetryAfter: busy.RetryAfter, Err: err}
	case errors.As(err, &unavailable):
		return &Error{Kind: KindStreamUnavailable, RetryAfter: unavailable.RetryAfter, Results: results(unavailable.Results), Err: err}
	case errors.As(err, &rejected):
		return &Error{Kind: KindStreamRejected, Results: results(rejected.Results), Err: err}
	case errors.As(err, &tooLarge):
		v := Violation{Index: tooLarge.Index, Violation: statevent.Violation{
			Reason: RejectedTooLarge,
			Detail: fmt.Sprintf("the event's record is %d bytes, Kinesis takes at most %d", tooLarge.Size, publish.MaxRecordBytes),
		}}
		if tooLarge.Index >= 0 && tooLarge.Index < len(events) {
			v.EventID = events[tooLarge.Index].GetEventId()
		}
		return &Error{Kind: KindInvalid, Violations: []Violation{v}, Err: err}
	case errors.Is(err, publish.ErrTooManyEvents):
		return &Error{Kind: KindTooLarge, Err: err}
	default:
		return &Error{Kind: KindInternal, Err: err}
	}
}

func results(rs []publish.Result) []Result {
	out := make([]Result, len(rs))
	for i, r := range rs {
		out[i] = Result{Index: r.Index, EventID: r.EventID, ShardID: r.ShardID, SequenceNumber: r.SequenceNumber, ErrorCode: r.ErrorCode}
	}
	return out
}
