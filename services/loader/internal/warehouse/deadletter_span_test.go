package warehouse_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// A row the warehouse refused is a dead_letter event on the load's span, with its position,
// event id and reason; a transformer rejection in the same batch is not (the consumer
// records those on the batch span).
func TestRefusedRowIsADeadLetterEventOnTheLoadSpan(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	addHitsCeiling(t, e.pool)
	rows := cleanRows(8)
	bad := rows[5]
	bad.Hits = 25
	req := request("", "9", rows...)
	req.Rejections = append(req.Rejections, newRejection("9", "validate"))

	recorder := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("test").Start(t.Context(), "LoadService/Load")
	resp, err := e.store.Load(ctx, req)
	span.End()
	if err != nil {
		t.Fatal(err)
	}
	assertCounts(t, resp, counts{inserted: 7, deadLettered: 2})

	ended := recorder.Ended()
	if len(ended) != 1 {
		t.Fatalf("%d spans ended, want the load's", len(ended))
	}
	var events []map[attribute.Key]string
	for _, ev := range ended[0].Events() {
		if ev.Name != "dead_letter" {
			continue
		}
		attrs := map[attribute.Key]string{}
		for _, kv := range ev.Attributes {
			attrs[kv.Key] = kv.Value.String()
		}
		events = append(events, attrs)
	}
	if len(events) != 1 {
		t.Fatalf("%d dead_letter events, want 1 (the refused row): %v", len(events), events)
	}
	for k, v := range map[attribute.Key]string{
		"messaging.destination.name":         testStream,
		"messaging.destination.partition.id": testShard,
		"boxscore.sequence_number":           bad.GetPosition().GetSequenceNumber(),
		"boxscore.event_id":                  bad.GetEventId(),
		"boxscore.dead_letter.stage":         "load",
		"boxscore.dead_letter.reason":        "sqlstate_23514",
		"boxscore.dead_letter.field":         "test_hits_below_20",
	} {
		if got := events[0][k]; got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}
