// Package ingest is the gateway's one code path from a decoded batch of events to the
// stream, shared by the HTTP and gRPC front ends: normalize, validate the batch whole, assign
// missing ids, publish.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"google.golang.org/protobuf/proto"

	"github.com/boxscore-dev/boxscore/pkg/apikey"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/limits"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/auth"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/publish"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/quota"
)

// MaxBatchEvents is the most events one request may carry: one PutRecords call's worth.
const MaxBatchEvents = limits.IngestRequestEvents

// Publisher puts validated events into the stream; *publish.Publisher is the one in use.
type Publisher interface {
	// Reserve takes a share of the in-flight budget before a request is read; see
	// publish.Publisher.Reserve.
	Reserve(bytes int64) (*publish.Reservation, error)
	// PublishReserved publishes within a reservation, or takes its own when it is nil,
	// recording producer in every record.
	PublishReserved(ctx context.Context, res *publish.Reservation, producer string, events []*statsv1.StatEvent) ([]publish.Result, error)
}

// Service authorizes, rate-limits, validates and publishes batches.
type Service struct {
	publisher Publisher
	quota     *quota.Limiter // nil: no quotas
	metrics   metrics
	labels    producerLabels
}

// Option configures a Service.
type Option func(*Service)

// WithQuota limits every producer's events and bytes per second with l.
func WithQuota(l *quota.Limiter) Option { return func(s *Service) { s.quota = l } }

// NewService returns a service publishing through p. A nil meter records nothing.
func NewService(p Publisher, meter metric.Meter, opts ...Option) (*Service, error) {
	if meter == nil {
		meter = noop.Meter{}
	}
	m, err := newMetrics(meter)
	if err != nil {
		return nil, err
	}
	s := &Service{publisher: p, metrics: m}
	for _, o := range opts {
		o(s)
	}
	return s, nil
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
	RejectedUnauthenticated   = "unauthenticated" // no or a bad credential (counted in requests.refused)
	RejectedForbidden         = "forbidden"       // a scope or source the producer lacks
	RejectedQuota             = "quota"           // over the producer's quota
)

type metrics struct {
	received, accepted, rejected metric.Int64Counter
	busyRequests                 metric.Int64Counter
	refusedRequests              metric.Int64Counter
}

func newMetrics(meter metric.Meter) (metrics, error) {
	var m metrics
	var errs [5]error
	m.received, errs[0] = meter.Int64Counter("boxscore.ingest.events.received", metric.WithUnit("{event}"),
		metric.WithDescription("Events received in batches that were read and decoded."))
	m.accepted, errs[1] = meter.Int64Counter("boxscore.ingest.events.accepted", metric.WithUnit("{event}"),
		metric.WithDescription("Events the stream acknowledged (answered as accepted)."))
	m.rejected, errs[2] = meter.Int64Counter("boxscore.ingest.events.rejected", metric.WithUnit("{event}"),
		metric.WithDescription("Events not accepted, by producer and reason (invalid, too_large, too_many_events, busy, stream_unavailable, stream_rejected, forbidden, quota, internal)."))
	m.busyRequests, errs[3] = meter.Int64Counter("boxscore.ingest.requests.busy", metric.WithUnit("{request}"),
		metric.WithDescription("Requests refused before their body was read because the in-flight budget was exhausted."))
	m.refusedRequests, errs[4] = meter.Int64Counter("boxscore.ingest.requests.refused", metric.WithUnit("{request}"),
		metric.WithDescription("Requests refused by producer (unknown before authentication) and reason: unauthenticated, forbidden, quota."))
	if err := errors.Join(errs[:]...); err != nil {
		return metrics{}, fmt.Errorf("ingest metrics: %w", err)
	}
	return m, nil
}

// count records the outcome of one submitted batch of producer (a bounded label).
func (m metrics) count(ctx context.Context, producer string, events int, results []Result, err error) {
	who := attribute.String("producer", producer)
	m.received.Add(ctx, int64(events), metric.WithAttributes(who))
	acked := 0
	for _, r := range results {
		if r.Acknowledged() {
			acked++
		}
	}
	m.accepted.Add(ctx, int64(acked), metric.WithAttributes(who))
	if err == nil || events == 0 {
		return
	}
	reason := rejectedReason(err)
	m.rejected.Add(ctx, int64(events-acked), metric.WithAttributes(who, attribute.String("reason", reason)))
	if reason == RejectedForbidden || reason == RejectedQuota {
		m.refusedRequests.Add(ctx, 1, metric.WithAttributes(who, attribute.String("reason", reason)))
	}
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
	case KindUnauthenticated:
		return RejectedUnauthenticated
	case KindForbidden:
		return RejectedForbidden
	case KindOverQuota:
		return RejectedQuota
	default:
		return RejectedInternal
	}
}

// Reservation is a batch's share of the in-flight budget, taken with Reserve or
// ReserveBytes.
type Reservation = publish.Reservation

// Reserve takes a share of the publisher's in-flight budget (one batch slot and bytes)
// before a request is read, so that reading it cannot grow memory past the budget. The error
// is an *Error of KindBusy. Pass the reservation to SubmitReserved, then release it.
func (s *Service) Reserve(bytes int64) (*Reservation, error) {
	res, err := s.publisher.Reserve(bytes)
	return res, s.busy(bytes, err)
}

// ReserveFor takes bytes of the in-flight budget for producer's request, without a batch
// slot (taken when the batch is published): grow it (Reservation.Grow) as a body of unknown
// length arrives. A producer may hold only its share of the budget. Only a
// *publish.Publisher can; any other publisher reserves as Reserve does.
func (s *Service) ReserveFor(producer string, bytes int64) (*Reservation, error) {
	p, ok := s.publisher.(interface {
		ReserveFor(string, int64) (*publish.Reservation, error)
	})
	if !ok {
		return s.Reserve(bytes)
	}
	res, err := p.ReserveFor(producer, bytes)
	return res, s.busy(bytes, err)
}

func (s *Service) busy(bytes int64, err error) error {
	if err == nil {
		return nil
	}
	s.metrics.busyRequests.Add(context.Background(), 1)
	e := classify(err, nil)
	e.Err = fmt.Errorf("reserve %d bytes: %w", bytes, err)
	return e
}

// Caller is who sends a batch: its principal (auth.Anonymous when authentication is off).
type Caller struct {
	Principal *auth.Principal
}

// Refused counts a request refused before it reached Submit (KindUnauthenticated, or
// KindOverQuota from Admit), for the per-producer metrics.
func (s *Service) Refused(ctx context.Context, p *auth.Principal, kind Kind) {
	s.metrics.refusedRequests.Add(ctx, 1, metric.WithAttributes(
		attribute.String("producer", s.labels.label(p)), attribute.String("reason", rejectedReason(&Error{Kind: kind}))))
}

// Admit checks, before a body is read, that the caller's quota has room for at least one
// event, so that a producer over its quota is refused without its body being read. The
// error is an *Error of KindOverQuota.
func (s *Service) Admit(ctx context.Context, c Caller) error {
	if s.quota == nil {
		return nil
	}
	if ok, wait := s.quota.Check(c.Principal.Producer, c.Principal.Quota); !ok {
		s.Refused(ctx, c.Principal, KindOverQuota)
		return overQuota(wait)
	}
	return nil
}

func overQuota(wait time.Duration) *Error {
	return &Error{Kind: KindOverQuota, RetryAfter: wait,
		Err: fmt.Errorf("over the producer's quota; it has room again in %s", wait.Round(time.Millisecond))}
}

// Submit validates the batch as a whole and, if every event is valid, publishes it. The
// events are normalized and given ids in place. On success every event is acknowledged and
// the results say where each went; otherwise the error is an *Error saying what the failure
// is (for KindForbidden, KindOverQuota, KindInvalid and KindTooLarge, nothing was sent).
func (s *Service) Submit(ctx context.Context, c Caller, events []*statsv1.StatEvent) ([]Result, error) {
	return s.SubmitReserved(ctx, nil, c, events)
}

// SubmitReserved is Submit within a reservation taken with Reserve (nil: none).
func (s *Service) SubmitReserved(ctx context.Context, res *Reservation, c Caller, events []*statsv1.StatEvent) ([]Result, error) {
	if c.Principal == nil {
		c.Principal = auth.Anonymous
	}
	results, err := s.submit(ctx, res, c, events)
	s.metrics.count(ctx, s.labels.label(c.Principal), len(events), results, err)
	return results, err
}

func (s *Service) submit(ctx context.Context, res *Reservation, c Caller, events []*statsv1.StatEvent) ([]Result, error) {
	// The quota is taken first: a producer over it is refused before any work is done for
	// it, and an invalid or forbidden batch counts against it like any other.
	if s.quota != nil && len(events) <= MaxBatchEvents { // a larger batch is refused by Validate
		size := 0
		for _, ev := range events {
			size += proto.Size(ev)
		}
		if ok, wait := s.quota.Take(c.Principal.Producer, c.Principal.Quota, len(events), size); !ok {
			return nil, overQuota(wait)
		}
	}
	// Scopes and sources are checked on the normalized events (Validate trims and
	// normalizes source), so that an owned source written another way is the same source.
	if err := Validate(events); err != nil {
		return nil, err
	}
	if err := authorize(c.Principal, events); err != nil {
		return nil, err
	}
	for _, ev := range events {
		// A client-given id is kept: it is what makes the client's retries idempotent.
		if ev.GetEventId() == "" {
			ev.EventId = statevent.NewEventID()
		}
	}
	published, err := s.publisher.PublishReserved(ctx, res, c.Principal.Producer, events)
	if err != nil {
		e := classify(err, events)
		e.Err = fmt.Errorf("publish %d events: %w", len(events), err)
		return e.Results, e
	}
	return results(published), nil
}

// authorize checks every event against the principal's scopes and sources, reporting each
// event it may not send. A refusal names the scope or the source, which the producer sent
// itself: it reveals nothing about other producers or keys.
func authorize(p *auth.Principal, events []*statsv1.StatEvent) error {
	var violations []Violation
	for i, ev := range events {
		scope := apikey.ScopeIngest
		if ev.GetRetraction() != nil {
			scope = apikey.ScopeRetract
		}
		if !p.HasScope(scope) {
			violations = append(violations, Violation{Index: i, EventID: ev.GetEventId(), Violation: statevent.Violation{
				Field: "retraction", Reason: "scope",
				Detail: fmt.Sprintf("the credential lacks the %q scope this event needs", scope),
			}})
			if scope == apikey.ScopeIngest {
				violations[len(violations)-1].Field = "batting"
			}
		}
		if !p.OwnsSource(ev.GetSource()) {
			violations = append(violations, Violation{Index: i, EventID: ev.GetEventId(), Violation: statevent.Violation{
				Field: "source", Reason: "source",
				Detail: fmt.Sprintf("the producer may not send source %q", ev.GetSource()),
			}})
		}
	}
	if len(violations) > 0 {
		return &Error{Kind: KindForbidden, Violations: violations,
			Err: fmt.Errorf("producer %s: %d events it may not send", p.Producer, len(violations))}
	}
	return nil
}
