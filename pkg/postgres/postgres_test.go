package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/boxscore-dev/boxscore/pkg/postgres"
	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
)

func newPool(t *testing.T) (*pgxpool.Pool, *tracetest.SpanRecorder, *sdkmetric.ManualReader, trace.Tracer) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	pool, err := postgres.NewPool(t.Context(), pgtest.NewDatabase(t),
		postgres.WithTracerProvider(tp), postgres.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, rec, reader, tp.Tracer("test")
}

// prepares is the number of preparations measured by the pool's operation-duration
// histogram.
func prepares(t *testing.T, reader *sdkmetric.ManualReader) uint64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			h, ok := m.Data.(metricdata.Histogram[float64])
			if !ok || m.Name != "db.client.operation.duration" {
				continue
			}
			for _, dp := range h.DataPoints {
				if v, ok := dp.Attributes.Value("pgx.operation.type"); ok && v.AsString() == "prepare" {
					n += dp.Count
				}
			}
		}
	}
	return n
}

// children returns the ended spans whose parent is parent.
func children(rec *tracetest.SpanRecorder, parent trace.SpanContext) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Parent().SpanID() == parent.SpanID() {
			out = append(out, s)
		}
	}
	return out
}

// A statement run for the first time (pgx prepares it then, to cache it) is one span: no
// prepare span nested under it, and none beside it.
func TestStatementIsOneSpanWithoutANestedPrepare(t *testing.T) {
	pool, rec, reader, tracer := newPool(t)
	if _, err := pool.Exec(t.Context(), `CREATE TABLE t (id int PRIMARY KEY, name text)`); err != nil {
		t.Fatal(err)
	}

	before := prepares(t, reader)
	ctx, parent := tracer.Start(t.Context(), "load")
	var n int
	// Parameters make pgx prepare the statement (the statement cache) before executing it.
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM t WHERE id > $1 AND name <> $2`, 0, "x").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"t"}, []string{"id", "name"}, pgx.CopyFromRows([][]any{{1, "a"}, {2, "b"}})); err != nil {
		t.Fatal(err)
	}
	parent.End()

	var statements []sdktrace.ReadOnlySpan
	for _, s := range children(rec, parent.SpanContext()) {
		if s.Name() != "pool.acquire" {
			statements = append(statements, s)
		}
	}
	var names []string
	for _, s := range statements {
		names = append(names, s.Name())
	}
	if len(statements) != 2 || names[0] != "SELECT" || names[1] != `copy_from "t"` {
		t.Fatalf(`spans under the parent: %q, want [SELECT copy_from "t"]`, names)
	}
	for _, s := range statements {
		if s.SpanKind() != trace.SpanKindClient {
			t.Errorf("%s: kind %v, want client", s.Name(), s.SpanKind())
		}
		if nested := children(rec, s.SpanContext()); len(nested) != 0 {
			t.Errorf("%s has %d spans nested under it (%q...), want none", s.Name(), len(nested), nested[0].Name())
		}
	}
	// pgx did prepare (first use of the statements), and it was measured though not a span:
	// the test saw what it claims to.
	if after := prepares(t, reader); after <= before {
		t.Errorf("no preparation measured (%d before, %d after): the statements were not prepared", before, after)
	}
	if len(rec.Ended()) != len(rec.Started()) {
		t.Errorf("%d spans started, %d ended", len(rec.Started()), len(rec.Ended()))
	}
}

// An explicit Prepare, which is no statement's, is still traced.
func TestExplicitPrepareIsTraced(t *testing.T) {
	pool, rec, _, tracer := newPool(t)
	ctx, parent := tracer.Start(t.Context(), "op")
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Conn().Prepare(ctx, "one", `SELECT 1`); err != nil {
		t.Fatal(err)
	}
	parent.End()
	var names []string
	for _, s := range children(rec, parent.SpanContext()) {
		names = append(names, s.Name())
	}
	if len(names) != 2 || names[1] != "SELECT" {
		t.Fatalf("spans under the parent: %q, want [pool.acquire SELECT]", names)
	}
}

// Without a span in the context nothing is recorded.
func TestNoParentNoSpans(t *testing.T) {
	pool, rec, _, _ := newPool(t)
	if _, err := pool.Exec(t.Context(), `SELECT $1::int`, 1); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Started()); n != 0 {
		t.Fatalf("%d spans without a parent, want none", n)
	}
}
