package publish

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/boxscore-dev/boxscore/pkg/testutil/testevents"
)

// The producer span follows the messaging semantic conventions (v1.43): a PRODUCER span
// named "send <stream>" with messaging.operation.type and .name "send", the system and the
// destination; and it is the span whose context the records carry, for consumers to link to.
func TestPublishProducerSpanFollowsTheMessagingConventions(t *testing.T) {
	f := newFixture(t, fastConfig())
	recorder := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	t.Cleanup(func() {
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	f.pub.tracer = tp.Tracer("test")

	events := testevents.Batch(3, true)
	if _, err := f.pub.Publish(t.Context(), events); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	var producer sdktrace.ReadOnlySpan
	for _, s := range recorder.Ended() {
		if s.SpanKind() == trace.SpanKindProducer {
			if producer != nil {
				t.Fatalf("two producer spans: %q and %q", producer.Name(), s.Name())
			}
			producer = s
		}
	}
	if producer == nil {
		t.Fatalf("no producer span among %d spans", len(recorder.Ended()))
	}
	if want := "send " + f.stream; producer.Name() != want {
		t.Errorf("producer span name %q, want %q", producer.Name(), want)
	}
	got := map[attribute.Key]attribute.Value{}
	for _, kv := range producer.Attributes() {
		got[kv.Key] = kv.Value
	}
	for key, want := range map[attribute.Key]attribute.Value{
		"messaging.system":              attribute.StringValue("aws_kinesis"),
		"messaging.operation.type":      attribute.StringValue("send"),
		"messaging.operation.name":      attribute.StringValue("send"),
		"messaging.destination.name":    attribute.StringValue(f.stream),
		"messaging.batch.message_count": attribute.IntValue(len(events)),
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key].String(), want.String())
		}
	}

	spanID := producer.SpanContext().SpanID().String()
	for id, rec := range f.readStream(t) {
		if tp := rec.Envelope.GetTraceContext()["traceparent"]; len(tp) < 52 || tp[36:52] != spanID {
			t.Errorf("event %s: traceparent %q does not name the producer span %s", id, tp, spanID)
		}
	}
}
