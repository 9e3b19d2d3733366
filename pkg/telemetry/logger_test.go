package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func TestLogRecordsInASpanCarryItsIDs(t *testing.T) {
	var out bytes.Buffer
	logger, err := NewLogger(Config{LogLevel: "info", LogFormat: "json"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("test").Start(context.Background(), "batch")
	defer span.End()

	logger.With("shard_id", "s1").InfoContext(ctx, "in span")
	logger.Info("outside")
	dec := json.NewDecoder(&out)
	var inSpan, outside map[string]any
	if err := dec.Decode(&inSpan); err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(&outside); err != nil {
		t.Fatal(err)
	}
	if inSpan["trace_id"] != span.SpanContext().TraceID().String() || inSpan["span_id"] != span.SpanContext().SpanID().String() || inSpan["shard_id"] != "s1" {
		t.Fatalf("record in span: %v, want trace_id %s span_id %s", inSpan, span.SpanContext().TraceID(), span.SpanContext().SpanID())
	}
	if _, ok := outside["trace_id"]; ok {
		t.Fatalf("record outside any span has a trace id: %v", outside)
	}
}
