package telemetry_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
	"github.com/boxscore-dev/boxscore/pkg/telemetry"
)

// producerSpan starts a span of a real SDK tracer provider (default sampler: a root span
// is sampled), as the gateway's publish span is.
func producerSpan(t *testing.T) (context.Context, trace.SpanContext) {
	t.Helper()
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("test").Start(context.Background(), "publish", trace.WithSpanKind(trace.SpanKindProducer))
	t.Cleanup(func() { span.End() })
	return ctx, span.SpanContext()
}

func TestTraceContextThroughTheEnvelope(t *testing.T) {
	ctx, producer := producerSpan(t)
	carrier := telemetry.InjectMap(ctx)
	if carrier["traceparent"] == "" {
		t.Fatalf("injected %v, want a traceparent", carrier)
	}
	ev := &statsv1.StatEvent{EventId: "ev-1"}
	data, err := statevent.EncodeEnvelope(ev, time.Now(), carrier)
	if err != nil {
		t.Fatal(err)
	}

	link, ok := telemetry.LinkFromMap(statevent.EnvelopeTraceContext(data))
	if !ok {
		t.Fatal("no link from a record carrying a trace context")
	}
	if link.SpanContext.TraceID() != producer.TraceID() || link.SpanContext.SpanID() != producer.SpanID() {
		t.Fatalf("link to %s/%s, want the producing span %s/%s",
			link.SpanContext.TraceID(), link.SpanContext.SpanID(), producer.TraceID(), producer.SpanID())
	}
	if !link.SpanContext.IsRemote() || !link.SpanContext.IsSampled() {
		t.Fatalf("link span context %+v: want remote and sampled, as the producer was", link.SpanContext)
	}

	// Extracting into a context makes the producer the parent of what starts there.
	remote := trace.SpanContextFromContext(telemetry.ExtractMap(context.Background(), statevent.EnvelopeTraceContext(data)))
	if !remote.Equal(link.SpanContext) {
		t.Fatalf("extracted %+v, linked %+v", remote, link.SpanContext)
	}
}

func TestRecordsWithoutTraceContextGetNoLink(t *testing.T) {
	withoutContext, err := statevent.EncodeEnvelope(&statsv1.StatEvent{EventId: "ev-old"}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]map[string]string{
		"envelope without trace context": statevent.EnvelopeTraceContext(withoutContext),
		"not an envelope":                statevent.EnvelopeTraceContext([]byte("{\"not\": \"protobuf\"")),
		"malformed traceparent":          {"traceparent": "00-not-a-trace-01"},
		"all-zero trace id":              {"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
		"baggage only":                   {"baggage": "k=v"},
	}
	for name, traceContext := range cases {
		t.Run(name, func(t *testing.T) {
			if link, ok := telemetry.LinkFromMap(traceContext); ok {
				t.Fatalf("got link %+v, want none", link)
			}
			if ctx := telemetry.ExtractMap(context.Background(), traceContext); trace.SpanContextFromContext(ctx).IsValid() {
				t.Fatal("extracted a valid span context from none")
			}
		})
	}
}

func TestInjectWithoutSpanIsEmpty(t *testing.T) {
	if got := telemetry.InjectMap(context.Background()); len(got) != 0 {
		t.Fatalf("injected %v without a span, want nothing", got)
	}
}
