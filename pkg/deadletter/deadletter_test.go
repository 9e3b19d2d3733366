package deadletter_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/boxscore-dev/boxscore/pkg/deadletter"
)

func TestRecordAddsOneEventWithTheLetter(t *testing.T) {
	recorder := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	_, span := tp.Tracer("test").Start(t.Context(), "batch")
	// An undecodable record: no event id, no field.
	deadletter.Record(span, deadletter.Letter{Stream: "s", ShardID: "shardId-1", SequenceNumber: "42", Stage: "decode", Reason: "envelope_undecodable"})
	span.End()

	events := recorder.Ended()[0].Events()
	if len(events) != 1 || events[0].Name != deadletter.EventName {
		t.Fatalf("events %v, want one %q", events, deadletter.EventName)
	}
	got := map[attribute.Key]string{}
	for _, kv := range events[0].Attributes {
		got[kv.Key] = kv.Value.String()
	}
	want := map[attribute.Key]string{
		"messaging.destination.name": "s", "messaging.destination.partition.id": "shardId-1",
		deadletter.SequenceNumberKey: "42", deadletter.StageKey: "decode", deadletter.ReasonKey: "envelope_undecodable",
	}
	if len(got) != len(want) {
		t.Errorf("attributes %v, want exactly %v (no empty event id or field)", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}
