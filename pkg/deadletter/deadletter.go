// Package deadletter says, in one way for every service, that a record was dead-lettered:
// a span event named "dead_letter" on the span of the batch that committed it, with the
// record's position, event id and reason, so a trace shows which records of a batch went
// to the dead-letter table and why. It also holds the rules every service and the CLI share
// about a dead letter's content: its text (StorableText) and its payload (DecodePayload).
package deadletter

import (
	"strings"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// EventName is the name of the span event of a dead letter.
const EventName = "dead_letter"

// Attribute keys of the event beside the messaging conventions' destination name (the
// stream) and partition id (the shard).
const (
	SequenceNumberKey = attribute.Key("boxscore.sequence_number")
	EventIDKey        = attribute.Key("boxscore.event_id")
	StageKey          = attribute.Key("boxscore.dead_letter.stage")
	ReasonKey         = attribute.Key("boxscore.dead_letter.reason")
	FieldKey          = attribute.Key("boxscore.dead_letter.field")
)

// Letter is what the event tells of a dead letter.
type Letter struct {
	Stream         string
	ShardID        string
	SequenceNumber string
	// EventID is empty when the record could not be decoded far enough to know it.
	EventID string
	// Stage is the stage that refused the record: "decode", "validate" or "load".
	Stage string
	// Reason is machine-readable, e.g. "hits_exceed_at_bats" or "sqlstate_22P05".
	Reason string
	// Field is the field or column the reason is about, when there is one.
	Field string
}

// Record adds the event of l to span (a no-op on a span that is not recording).
func Record(span trace.Span, l Letter) {
	if !span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{
		semconv.MessagingDestinationName(l.Stream),
		semconv.MessagingDestinationPartitionID(l.ShardID),
		SequenceNumberKey.String(l.SequenceNumber),
		StageKey.String(l.Stage),
		ReasonKey.String(l.Reason),
	}
	if l.EventID != "" {
		attrs = append(attrs, EventIDKey.String(l.EventID))
	}
	if l.Field != "" {
		attrs = append(attrs, FieldKey.String(l.Field))
	}
	span.AddEvent(EventName, trace.WithAttributes(attrs...))
}

// StorableText returns s as valid UTF-8 without NUL bytes: every NUL, and every run of bytes
// that is not UTF-8, becomes U+FFFD. A dead letter's text must be both, because a protobuf
// string field must be valid UTF-8 and PostgreSQL text holds no NUL (SQLSTATE 22021); the
// record's own bytes stay whole in the dead letter's payload. The one rule for every service
// that builds or stores a dead letter.
func StorableText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
