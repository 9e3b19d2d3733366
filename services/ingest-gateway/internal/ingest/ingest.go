// Package ingest is the gateway's one code path from a decoded batch of events to the
// stream, shared by the HTTP and gRPC front ends: normalize, validate the batch whole, assign
// missing ids, publish.
package ingest

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/limits"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/publish"
)

// MaxBatchEvents is the most events one request may carry: one PutRecords call's worth.
const MaxBatchEvents = limits.IngestRequestEvents

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

// NewService returns a service publishing through p. A nil meter records nothing.
func NewService(p Publisher, meter metric.Meter) (*Service, error) {
	if meter == nil {
		meter = noop.Meter{}
	}
	m, err := newMetrics(meter)
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
func (m metrics) count(ctx context.Context, events int, results []Result, err error) {
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
	m.rejected.Add(ctx, int64(events-acked), metric.WithAttributes(attribute.String("reason", rejectedReason(err))))
}

// rejectedReason is the reason of the events.rejected metric for a failed batch.
func rejectedReason(err error) string {
	var e *Error
	if !errors.As(err, &e) {
		return RejectedInternal
	}
	switch e.Kind {
	case KindInvalid:
		if len(e.Violations) == 1 && e.Violations[0].Reason == RejectedTooLarge {
			return RejectedTooLarge
		}
		return RejectedInvalid
	case KindTooLarge:
		return RejectedTooManyEvents
	case KindBusy:
		return RejectedBusy
	case KindStreamUnavailable:
		return RejectedStreamUnavailable
	case KindStreamRejected:
		return RejectedStreamRejected
	default:
		return RejectedInternal
	}
}

// Reservation is a batch's share of the in-flight budget, taken with Reserve.
type Reservation = publish.Reservation

// Reserve takes a share of the publisher's in-flight budget (one batch slot and bytes)
// before a request is read, so that reading it cannot grow memory past the budget. The error
// is an *Error of KindBusy. Pass the reservation to SubmitReserved, then release it.
func (s *Service) Reserve(bytes int64) (*Reservation, error) {
	res, err := s.publisher.Reserve(bytes)
	if err != nil {
		s.metrics.busyRequests.Add(context.Background(), 1)
		e := classify(err, nil)
		e.Err = fmt.Errorf("reserve %d bytes: %w", bytes, err)
		return nil, e
	}
	return res, nil
}

// Submit validates the batch as a whole and, if every event is valid, publishes it. The
// events are normalized and given ids in place. On success every event is acknowledged and
// the results say where each went; otherwise the error is an *Error saying what the failure
// is (for KindInvalid and KindTooLarge, nothing was sent).
func (s *Service) Submit(ctx context.Context, events []*statsv1.StatEvent) ([]Result, error) {
	return s.SubmitReserved(ctx, nil, events)
}

// SubmitReserved is Submit within a reservation taken with Reserve (nil: none).
func (s *Service) SubmitReserved(ctx context.Context, res *Reservation, events []*statsv1.StatEvent) ([]Result, error) {
	results, err := s.submit(ctx, res, events)
	s.metrics.count(ctx, len(events), results, err)
	return results, err
}

func (s *Service) submit(ctx context.Context, res *Reservation, events []*statsv1.StatEvent) ([]Result, error) {
	if err := Validate(events); err != nil {
		return nil, err
	}
	for _, ev := range events {
		// A client-given id is kept: it is what makes the client's retries idempotent.
		if ev.GetEventId() == "" {
			ev.EventId = statevent.NewEventID()
		}
	}
	published, err := s.publisher.PublishReserved(ctx, res, events)
	if err != nil {
		e := classify(err, events)
		e.Err = fmt.Errorf("publish %d events: %w", len(events), err)
		return e.Results, e
	}
	return results(published), nil
}
