package statevent

import (
	"errors"
	"fmt"
	"mime"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
)

// ContentTypeStatEventProto is the envelope content type of a binary-encoded StatEvent.
const ContentTypeStatEventProto = "application/x-protobuf; proto=boxscore.stats.v1.StatEvent"

// Reasons of a DecodeError.
const (
	// ReasonEnvelopeUndecodable: the record body is not a streamv1.Envelope.
	ReasonEnvelopeUndecodable = "envelope_undecodable"
	// ReasonUnknownContentType: the envelope carries something other than a StatEvent.
	ReasonUnknownContentType = "unknown_content_type"
	// ReasonPayloadUndecodable: the envelope's payload is not a StatEvent.
	ReasonPayloadUndecodable = "payload_undecodable"
)

// DecodeError says why a Kinesis record body could not be decoded.
type DecodeError struct {
	// Reason is one of the Reason* constants.
	Reason string
	// EventID is the envelope's event id when the envelope itself could be read, so a
	// dead-lettered record can still be named.
	EventID string
	// Err is the underlying error.
	Err error
}

func (e *DecodeError) Error() string {
	if e.EventID != "" {
		return fmt.Sprintf("decode record of event %s: %s: %v", e.EventID, e.Reason, e.Err)
	}
	return fmt.Sprintf("decode record: %s: %v", e.Reason, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// EncodeEnvelope serializes ev (proto binary) inside a streamv1.Envelope with accepted_at
// and the W3C trace context of the producing span (traceparent, tracestate, baggage), and
// returns the envelope's bytes: the body of one Kinesis record.
func EncodeEnvelope(ev *statsv1.StatEvent, acceptedAt time.Time, traceContext map[string]string) ([]byte, error) {
	return EncodeProducerEnvelope(ev, "", acceptedAt, traceContext)
}

// EncodeProducerEnvelope is EncodeEnvelope with the authenticated producer recorded in the
// envelope (the gateway's path; EncodeEnvelope leaves it empty, as records written before
// producers were authenticated have it).
func EncodeProducerEnvelope(ev *statsv1.StatEvent, producer string, acceptedAt time.Time, traceContext map[string]string) ([]byte, error) {
	if ev == nil {
		return nil, errors.New("encode envelope: event is nil")
	}
	// Deterministic so that the same event always yields the same record bytes.
	marshal := proto.MarshalOptions{Deterministic: true}
	payload, err := marshal.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", ev.GetEventId(), err)
	}
	env := &streamv1.Envelope{
		ContentType:  ContentTypeStatEventProto,
		Payload:      payload,
		EventId:      ev.GetEventId(),
		AcceptedAt:   timestamppb.New(acceptedAt),
		TraceContext: traceContext,
		Producer:     producer,
	}
	data, err := marshal.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encode envelope of event %s: %w", ev.GetEventId(), err)
	}
	return data, nil
}

// DecodeEnvelope parses a Kinesis record body into its envelope and event. Every error is a
// *DecodeError. When the envelope could be read but its payload could not, the envelope is
// returned with the error and the error keeps the envelope's event id.
func DecodeEnvelope(data []byte) (*streamv1.Envelope, *statsv1.StatEvent, error) {
	env := &streamv1.Envelope{}
	if err := proto.Unmarshal(data, env); err != nil {
		return nil, nil, &DecodeError{Reason: ReasonEnvelopeUndecodable, Err: err}
	}
	if !isStatEventContentType(env.GetContentType()) {
		return env, nil, &DecodeError{
			Reason:  ReasonUnknownContentType,
			EventID: env.GetEventId(),
			Err:     fmt.Errorf("content type %q is not %q", env.GetContentType(), ContentTypeStatEventProto),
		}
	}
	ev := &statsv1.StatEvent{}
	if err := proto.Unmarshal(env.GetPayload(), ev); err != nil {
		return env, nil, &DecodeError{Reason: ReasonPayloadUndecodable, EventID: env.GetEventId(), Err: err}
	}
	return env, ev, nil
}

// isStatEventContentType compares media types as media types: parameter spacing and case of
// the type and parameter names do not matter, the proto message name does.
func isStatEventContentType(ct string) bool {
	// The spelling every encoder writes is recognized without parsing it: parsing allocates
	// a map per record.
	if ct == ContentTypeStatEventProto {
		return true
	}
	mediaType, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mediaType == "application/x-protobuf" && params["proto"] == "boxscore.stats.v1.StatEvent"
}

// EnvelopeTraceContext returns the W3C trace context a Kinesis record body carries in its
// envelope, or nil when the body is not an envelope or its producer sent none (older
// producers): such a record simply has no producing span to link to.
func EnvelopeTraceContext(data []byte) map[string]string {
	// Only the trace context is wanted: the payload is left undecoded, as bytes.
	env := &streamv1.Envelope{}
	if err := proto.Unmarshal(data, env); err != nil {
		return nil
	}
	return env.GetTraceContext()
}
