// Package tracetrust decides how much of a producer's trace context the gateway takes.
// Producers are outside the gateway's trust: by default their traceparent is linked from a
// new root span rather than continued (so a client cannot choose the trace ids stored in
// records or force sampling), and their baggage is capped (so a client cannot have 8 KiB of
// baggage copied into every record's envelope).
package tracetrust

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
)

// Limits of the baggage the gateway keeps from a caller; members beyond them are dropped.
const (
	MaxBaggageBytes   = 1024
	MaxBaggageMembers = 8
)

// Propagator is W3C TraceContext and Baggage, with the baggage extracted capped at
// MaxBaggageBytes and MaxBaggageMembers.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, cappedBaggage{})
}

type cappedBaggage struct{ propagation.Baggage }

// Extract keeps the members of the caller's baggage header that fit the caps, in order.
func (c cappedBaggage) Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	header := carrier.Get("baggage")
	if header == "" {
		return ctx
	}
	b := Cap(header)
	if b.Len() == 0 {
		return ctx
	}
	return baggage.ContextWithBaggage(ctx, b)
}

// Cap parses a baggage header, keeping the members that fit MaxBaggageMembers and
// MaxBaggageBytes in order; malformed members are dropped rather than the whole header.
func Cap(header string) baggage.Baggage {
	var kept []baggage.Member
	size := 0
	// The header is at most what the transport let through; a member list longer than the
	// cap is not parsed past it.
	for raw := range strings.SplitSeq(header, ",") {
		if len(kept) == MaxBaggageMembers {
			break
		}
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		if size+len(raw)+1 > MaxBaggageBytes {
			break
		}
		parsed, err := baggage.Parse(raw)
		if err != nil {
			continue
		}
		kept = append(kept, parsed.Members()...)
		size += len(raw) + 1
	}
	b, err := baggage.New(kept...)
	if err != nil {
		return baggage.Baggage{}
	}
	return b
}

// CapHeader is Cap written back as a header ("" when nothing is kept), for metadata that
// another propagator reads later (gRPC).
func CapHeader(header string) string {
	if header == "" {
		return ""
	}
	return Cap(header).String()
}
