// Package postgres is how Boxscore's services connect to PostgreSQL (the loader's warehouse,
// the shard consumer's lease store): a pgx pool traced and measured by otelpgx, configured
// once so that every service's database spans look alike.
package postgres

import (
	"context"
	"fmt"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Option configures NewPool.
type Option func(*options)

type options struct {
	tracer []otelpgx.Option
}

// WithTracerProvider records the pool's spans with tp instead of the global provider.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracer = append(o.tracer, otelpgx.WithTracerProvider(tp)) }
}

// WithMeterProvider records the pool's metrics (db.client.operation.duration, ...) with mp
// instead of the global provider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.tracer = append(o.tracer, otelpgx.WithMeterProvider(mp)) }
}

// NewPool returns a pool for databaseURL (a PostgreSQL URL or keyword/value string; pgx
// pool settings such as pool_max_conns are honoured). Connections are made on first use,
// so an unreachable server is an error of the first query (or of a readiness Ping), not of
// NewPool.
//
// Statements, COPYs, batches and connection acquisitions become CLIENT spans (named by the
// operation, e.g. "INSERT", with db.query.text) under the caller's span; with no span in
// the context nothing is recorded. The statement preparation that pgx does on a statement's
// first use is not a span of its own: it would be a second span of the same name nested
// under the statement's. An explicit Prepare is still traced.
func NewPool(ctx context.Context, databaseURL string, opts ...Option) (*pgxpool.Pool, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	cfg.ConnConfig.Tracer = newTracer(o.tracer...)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	return pool, nil
}

// tracer is otelpgx's tracer without a span for the preparation pgx does inside a statement
// (Query, Exec, CopyFrom with the statement or description cache): the statement's span
// already covers it. Its duration is still measured.
type tracer struct {
	*otelpgx.Tracer
}

// inStatement marks the context of a traced statement, which pgx hands to the Prepare it
// makes for the statement.
type inStatement struct{}

var (
	_ pgx.QueryTracer       = tracer{}
	_ pgx.CopyFromTracer    = tracer{}
	_ pgx.BatchTracer       = tracer{}
	_ pgx.ConnectTracer     = tracer{}
	_ pgx.PrepareTracer     = tracer{}
	_ pgxpool.AcquireTracer = tracer{}
)

func newTracer(opts ...otelpgx.Option) tracer {
	return tracer{Tracer: otelpgx.NewTracer(opts...)}
}

func (t tracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(t.Tracer.TraceQueryStart(ctx, conn, data), inStatement{}, true)
}

func (t tracer) TraceCopyFromStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceCopyFromStartData) context.Context {
	return context.WithValue(t.Tracer.TraceCopyFromStart(ctx, conn, data), inStatement{}, true)
}

func (t tracer) TracePrepareStart(ctx context.Context, conn *pgx.Conn, data pgx.TracePrepareStartData) context.Context {
	if ctx.Value(inStatement{}) != nil {
		// Hand otelpgx a non-recording span (same trace and span ids): it then measures the
		// preparation without starting a span. The context lives only for the Prepare call.
		ctx = trace.ContextWithSpanContext(ctx, trace.SpanContextFromContext(ctx))
	}
	return t.Tracer.TracePrepareStart(ctx, conn, data)
}
