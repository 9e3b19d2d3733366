package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// envelopePropagator is the format of the trace context inside a record's envelope: W3C
// TraceContext and Baggage, whatever the process's global propagator is, because the
// envelope is a contract between services (see proto/boxscore/stream/v1).
var envelopePropagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// InjectMap returns the W3C trace context (traceparent, tracestate, baggage) of ctx's span
// as a map, for a message that has no headers of its own (a Kinesis record's envelope).
// It is empty when ctx carries no valid span.
func InjectMap(ctx context.Context) map[string]string {
	carrier := propagation.MapCarrier{}
	envelopePropagator.Inject(ctx, carrier)
	return carrier
}

// ExtractMap returns ctx with the remote span context and baggage found in a map written
// by InjectMap (ctx unchanged when there is none or it is malformed).
func ExtractMap(ctx context.Context, traceContext map[string]string) context.Context {
	if len(traceContext) == 0 {
		return ctx
	}
	return envelopePropagator.Extract(ctx, propagation.MapCarrier(traceContext))
}

// LinkFromMap returns a link to the span whose trace context the map holds, and false when
// it holds none (a record of an older producer, or a malformed traceparent): such a record
// simply gets no link.
func LinkFromMap(traceContext map[string]string) (trace.Link, bool) {
	if traceContext["traceparent"] == "" {
		return trace.Link{}, false
	}
	sc := trace.SpanContextFromContext(ExtractMap(context.Background(), traceContext))
	if !sc.IsValid() {
		return trace.Link{}, false
	}
	return trace.Link{SpanContext: sc}, true
}
