// Package ingest is the gateway's one code path from a decoded batch of events to the
// stream, shared by the HTTP and gRPC front ends: normalize, validate the batch whole, assign
// missing ids, publish.
package ingest

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

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
	metrics   metrics
}

// NewService returns a service publishing through p. It records its metrics through the
// global meter provider.
func NewService(p Publisher) (*Service, error) {
	m, err := newMetrics(otel.Meter("github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/ingest"))
	if err != nil {
		return nil, err
	}
	return &Service{publisher: p, metrics: m}, nil
}

// Reasons of the events.rejected metric.
const (
	RejectedInvalid           = "invalid"            // the batch failed validation (all its events)
	RejectedTooLarge          = "too_large"          // an event's record exceeds the Kinesis limit (all the batch's events)
	RejectedTooManyEvents     = "too_many_events"    // the batch is over MaxBatchEvents
	RejectedBusy              = "busy"               // the in-flight budget was exhausted
	RejectedStreamUnavailable = "stream_unavailable" // not acknowledged within the retry budget
	RejectedStreamRejected    = "stream_rejected"    // Kinesis refused them for good
	RejectedInternal          = "internal"
)

type metrics struct {
	received, accepted, rejected metric.Int64Counter
	busyRequests                 metric.Int64Counter
}

func newMetrics(meter metric.Meter) (metrics, error) {
	var m metrics
	var errs [4]error
	m.received, errs[0] = meter.Int64Counter("boxscore.ingest.events.received", metric.WithUnit("{event}"),
		metric.WithDescription("Events received in batches that were read and decoded."))
	m.accepted, errs[1] = meter.Int64Counter("boxscore.ingest.events.accepted", metric.WithUnit("{event}"),
		metric.WithDescription("Events the stream acknowledged (answered as accepted)."))
	m.rejected, errs[2] = meter.Int64Counter("boxscore.ingest.events.rejected", metric.WithUnit("{event}"),
		metric.WithDescription("Events not accepted, by reason (invalid, too_large, too_many_events, busy, stream_unavailable, stream_rejected, internal)."))
	m.busyRequests, errs[3] = meter.Int64Counter("boxscore.ingest.requests.busy", metric.WithUnit("{request}"),
		metric.WithDescription("Requests refused before their body was read because the in-flight budget was exhausted."))
	if err := errors.Join(errs[:]...); err != nil {
		return metrics{}, fmt.Errorf("ingest metrics: %w", err)
	}
	return m, nil
}

// count records the outcome of one submitted batch.
func (m metrics) count(ctx context.Context, events int, results []publish.Result, err error) {
	m.received.Add(ctx, int64(events))
	acked := 0
	for _, r := range results {
		if r.Acknowledged() {
			acked++
		}
	}
	m.accepted.Add(ctx, int64(acked))
	if err == nil || events == 0 {
		return
	}
	reason := RejectedInternal
	var (
		invalid     *InvalidBatchError
		tooMany     *TooManyEventsError
		busy        *publish.BusyError
		unavailable *publish.UnavailableError
		rejected    *publish.RejectedError
	)
	switch {
	case errors.As(err, &invalid):
		reason = RejectedInvalid
		if len(invalid.Violations) == 1 && invalid.Violations[0].Reason == RejectedTooLarge {
			reason = RejectedTooLarge
		}
	case errors.As(err, &tooMany):
		reason = RejectedTooManyEvents
	case errors.As(err, &busy):
		reason = RejectedBusy
	case errors.As(err, &unavailable):
		reason = RejectedStreamUnavailable
	case errors.As(err, &rejected):
		reason = RejectedStreamRejected
	}
	m.rejected.Add(ctx, int64(events-acked), metric.WithAttributes(attribute.String("reason", reason)))
}

// Reserve takes a share of the publisher's in-flight budget (one batch slot and bytes)
// before a request is read, so that reading it cannot grow memory past the budget. The error
// is a *publish.BusyError. Pass the reservation to SubmitReserved, then release it.
func (s *Service) Reserve(bytes int64) (*publish.Reservation, error) {
	res, err := s.publisher.Reserve(bytes)
	if err != nil {
		s.metrics.busyRequests.Add(context.Background(), 1)
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
	results, err := s.submit(ctx, res, events)
	s.metrics.count(ctx, len(events), results, err)
	return results, err
}

func (s *Service) submit(ctx context.Context, res *publish.Reservation, events []*statsv1.StatEvent) ([]publish.Result, error) {
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
				Reason: RejectedTooLarge,
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
