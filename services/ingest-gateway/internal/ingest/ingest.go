// Package ingest is the gateway's one code path from a decoded batch of events to the
// stream, shared by the HTTP and gRPC front ends: normalize, validate the batch whole, assign
// missing ids, publish.
package ingest

import (
	"context"
	"errors"
	"fmt"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/publish"
)

// MaxBatchEvents is the most events one request may carry: one PutRecords call's worth.
const MaxBatchEvents = publish.MaxBatchEvents

// ErrEmptyBatch is returned for a batch without events.
var ErrEmptyBatch = errors.New("the batch has no events")

// TooManyEventsError is returned for a batch of more than MaxBatchEvents events.
type TooManyEventsError struct{ Count int }

func (e *TooManyEventsError) Error() string {
	return fmt.Sprintf("the batch has %d events, at most %d are allowed", e.Count, MaxBatchEvents)
}

// Violation is one problem with one event of a batch.
type Violation struct {
	// Index is the event's position in the batch.
	Index int
	// EventID is the event's id as the client sent it (empty when it sent none).
	EventID string
	statevent.Violation
}

// InvalidBatchError lists every problem of every invalid event of a batch. Nothing of the
// batch was sent.
type InvalidBatchError struct {
	Violations []Violation
}

func (e *InvalidBatchError) Error() string {
	events := map[int]bool{}
	for _, v := range e.Violations {
		events[v.Index] = true
	}
	first := e.Violations[0]
	return fmt.Sprintf("%d invalid events (%d violations), first: event %d: %s", len(events), len(e.Violations), first.Index, first.Violation)
}

// Publisher puts validated events into the stream; *publish.Publisher is the one in use.
type Publisher interface {
	// Reserve takes a share of the in-flight budget before a request is read; see
	// publish.Publisher.Reserve.
	Reserve(bytes int64) (*publish.Reservation, error)
	// PublishReserved publishes within a reservation, or takes its own when it is nil.
	PublishReserved(ctx context.Context, res *publish.Reservation, events []*statsv1.StatEvent) ([]publish.Result, error)
}

// Service validates and publishes batches.
type Service struct {
	publisher Publisher
}

// NewService returns a service publishing through p.
func NewService(p Publisher) *Service {
	return &Service{publisher: p}
}

// Reserve takes a share of the publisher's in-flight budget (one batch slot and bytes)
// before a request is read, so that reading it cannot grow memory past the budget. The error
// is a *publish.BusyError. Pass the reservation to SubmitReserved, then release it.
func (s *Service) Reserve(bytes int64) (*publish.Reservation, error) {
	res, err := s.publisher.Reserve(bytes)
	if err != nil {
		return nil, fmt.Errorf("reserve %d bytes: %w", bytes, err)
	}
	return res, nil
}

// Submit validates the batch as a whole and, if every event is valid, publishes it. The
// events are normalized and given ids in place. The error is ErrEmptyBatch,
// *TooManyEventsError or *InvalidBatchError (nothing sent), or one of the publish errors.
func (s *Service) Submit(ctx context.Context, events []*statsv1.StatEvent) ([]publish.Result, error) {
	return s.SubmitReserved(ctx, nil, events)
}

// SubmitReserved is Submit within a reservation taken with Reserve (nil: none).
func (s *Service) SubmitReserved(ctx context.Context, res *publish.Reservation, events []*statsv1.StatEvent) ([]publish.Result, error) {
	if err := Validate(events); err != nil {
		return nil, err
	}
	for _, ev := range events {
		// A client-given id is kept: it is what makes the client's retries idempotent.
		if ev.GetEventId() == "" {
			ev.EventId = statevent.NewEventID()
		}
	}
	results, err := s.publisher.PublishReserved(ctx, res, events)
	var tooLarge *publish.RecordTooLargeError
	if errors.As(err, &tooLarge) {
		return nil, &InvalidBatchError{Violations: []Violation{{
			Index:   tooLarge.Index,
			EventID: events[tooLarge.Index].GetEventId(),
			Violation: statevent.Violation{
				Reason: "too_large",
				Detail: fmt.Sprintf("the event's record is %d bytes, Kinesis takes at most %d", tooLarge.Size, publish.MaxRecordBytes),
			},
		}}}
	}
	if err != nil {
		return results, fmt.Errorf("publish %d events: %w", len(events), err)
	}
	return results, nil
}

// Validate normalizes every event in place and checks the batch: its size, then the shape
// of every event. It reports every violation of every event, not just the first.
func Validate(events []*statsv1.StatEvent) error {
	switch {
	case len(events) == 0:
		return ErrEmptyBatch
	case len(events) > MaxBatchEvents:
		return &TooManyEventsError{Count: len(events)}
	}
	var violations []Violation
	firstIndex := make(map[string]int, len(events))
	for i, ev := range events {
		statevent.Normalize(ev)
		for _, v := range statevent.ValidateShape(ev) {
			violations = append(violations, Violation{Index: i, EventID: ev.GetEventId(), Violation: v})
		}
		// Two events with one id in one batch are a client bug: downstream, the second would
		// silently replace or be dropped as a duplicate of the first.
		if id := ev.GetEventId(); id != "" {
			if first, seen := firstIndex[id]; seen {
				violations = append(violations, Violation{Index: i, EventID: id, Violation: statevent.Violation{
					Field:  "eventId",
					Reason: "duplicate",
					Detail: fmt.Sprintf("event id %s is also the id of event %d of this batch", id, first),
				}})
			} else {
				firstIndex[id] = i
			}
		}
	}
	if len(violations) > 0 {
		return &InvalidBatchError{Violations: violations}
	}
	return nil
}
