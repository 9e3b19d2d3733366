package lease

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

type metrics struct {
	held          metric.Int64Gauge
	takes         metric.Int64Counter
	steals        metric.Int64Counter
	losses        metric.Int64Counter
	renewFailures metric.Int64Counter
	raises        metric.Int64Counter
	refusals      metric.Int64Counter
	attrs         metric.MeasurementOption
}

func newMetrics(m metric.Meter, stream string) (*metrics, error) {
	if m == nil {
		m = noop.Meter{}
	}
	out := metrics{attrs: metric.WithAttributes(attribute.String("stream", stream))}
	var err, e error
	if out.held, e = m.Int64Gauge("boxscore.lease.held", metric.WithDescription("Shard leases this worker holds."), metric.WithUnit("{lease}")); e != nil {
		err = e
	}
	if out.takes, e = m.Int64Counter("boxscore.lease.takes", metric.WithDescription("Leases taken (unowned, expired or stolen)."), metric.WithUnit("{lease}")); e != nil {
		err = e
	}
	if out.steals, e = m.Int64Counter("boxscore.lease.steals", metric.WithDescription("Leases taken from a live worker to balance the group."), metric.WithUnit("{lease}")); e != nil {
		err = e
	}
	if out.losses, e = m.Int64Counter("boxscore.lease.losses", metric.WithDescription("Leases lost: taken by another worker or not renewed in time."), metric.WithUnit("{lease}")); e != nil {
		err = e
	}
	if out.renewFailures, e = m.Int64Counter("boxscore.lease.renew_failures", metric.WithDescription("Renewals that failed with an error (not a refusal)."), metric.WithUnit("{renewal}")); e != nil {
		err = e
	}
	if out.raises, e = m.Int64Counter("boxscore.lease.token_raises", metric.WithDescription("Fencing tokens raised above a token the warehouse already held (the lease store was reset or moved)."), metric.WithUnit("{lease}")); e != nil {
		err = e
	}
	if out.refusals, e = m.Int64Counter("boxscore.lease.claim_refusals", metric.WithDescription("Leases given back because the warehouse refused this worker's claim or commits under them."), metric.WithUnit("{lease}")); e != nil {
		err = e
	}
	if err != nil {
		return nil, fmt.Errorf("lease metrics: %w", err)
	}
	return &out, nil
}

func (m *metrics) heldNow(n int) {
	m.held.Record(context.Background(), int64(n), m.attrs)
}
