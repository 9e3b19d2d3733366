package statevent

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
)

const testTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestEnvelopeRoundTrip(t *testing.T) {
	ev := validEvent()
	acceptedAt := time.Date(2024, 3, 20, 23, 59, 1, 123456789, time.UTC)
	traceContext := map[string]string{"traceparent": testTraceparent, "tracestate": "vendor=1"}

	data, err := EncodeEnvelope(ev, acceptedAt, traceContext)
	if err != nil {
		t.Fatalf("EncodeEnvelope: %v", err)
	}
	env, got, err := DecodeEnvelope(data)
	if err != nil {
		t.Fatalf("DecodeEnvelope: %v", err)
	}
	if !proto.Equal(got, ev) {
		t.Errorf("event = %v, want %v", got, ev)
	}
	if env.GetContentType() != ContentTypeStatEventProto {
		t.Errorf("content type = %q", env.GetContentType())
	}
	if env.GetEventId() != ev.GetEventId() {
		t.Errorf("envelope event id = %q, want %q", env.GetEventId(), ev.GetEventId())
	}
	if !env.GetAcceptedAt().AsTime().Equal(acceptedAt) {
		t.Errorf("accepted at = %v, want %v", env.GetAcceptedAt().AsTime(), acceptedAt)
	}
	if len(env.GetTraceContext()) != 2 || env.GetTraceContext()["traceparent"] != testTraceparent ||
		env.GetTraceContext()["tracestate"] != "vendor=1" {
		t.Errorf("trace context = %v, want %v", env.GetTraceContext(), traceContext)
	}

	// Same input, same bytes: a retried put carries an identical record.
	again, err := EncodeEnvelope(ev, acceptedAt, traceContext)
	if err != nil {
		t.Fatalf("EncodeEnvelope again: %v", err)
	}
	if string(again) != string(data) {
		t.Errorf("EncodeEnvelope is not deterministic")
	}
}

func TestEncodeEnvelopeNil(t *testing.T) {
	if _, err := EncodeEnvelope(nil, time.Now(), nil); err == nil {
		t.Fatal("EncodeEnvelope(nil) succeeded")
	}
}

func TestDecodeEnvelopeContentTypeVariants(t *testing.T) {
	for _, ct := range []string{
		ContentTypeStatEventProto,
		"application/x-protobuf;proto=boxscore.stats.v1.StatEvent",
		`Application/X-Protobuf; Proto="boxscore.stats.v1.StatEvent"`,
	} {
		payload, err := proto.Marshal(validEvent())
		if err != nil {
			t.Fatal(err)
		}
		data := mustMarshal(t, &streamv1.Envelope{ContentType: ct, Payload: payload})
		if _, _, err := DecodeEnvelope(data); err != nil {
			t.Errorf("content type %q: %v", ct, err)
		}
	}
}

func TestDecodeEnvelopeErrors(t *testing.T) {
	payload, err := proto.Marshal(validEvent())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		data        []byte
		wantReason  string
		wantEventID string
		wantEnv     bool
	}{
		{"not protobuf", []byte("not a protobuf \xff\xff\xff"), ReasonEnvelopeUndecodable, "", false},
		{"json", []byte(`{"eventId":"x"}`), ReasonEnvelopeUndecodable, "", false},
		{"truncated envelope", mustMarshal(t, &streamv1.Envelope{ContentType: ContentTypeStatEventProto, Payload: payload})[:20],
			ReasonEnvelopeUndecodable, "", false},
		{"empty record", nil, ReasonUnknownContentType, "", true},
		{"json content type", mustMarshal(t, &streamv1.Envelope{ContentType: "application/json", Payload: []byte("{}"), EventId: "e-1"}),
			ReasonUnknownContentType, "e-1", true},
		{"other proto message", mustMarshal(t, &streamv1.Envelope{ContentType: "application/x-protobuf; proto=boxscore.stats.v2.StatEvent", Payload: payload, EventId: "e-2"}),
			ReasonUnknownContentType, "e-2", true},
		{"malformed content type", mustMarshal(t, &streamv1.Envelope{ContentType: "application/x-protobuf; proto", Payload: payload, EventId: "e-3"}),
			ReasonUnknownContentType, "e-3", true},
		{"payload not a StatEvent", mustMarshal(t, &streamv1.Envelope{ContentType: ContentTypeStatEventProto, Payload: []byte{0xff, 0xff, 0xff}, EventId: "e-4"}),
			ReasonPayloadUndecodable, "e-4", true},
		{"payload truncated", mustMarshal(t, &streamv1.Envelope{ContentType: ContentTypeStatEventProto, Payload: payload[:len(payload)-3], EventId: "e-5"}),
			ReasonPayloadUndecodable, "e-5", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, ev, err := DecodeEnvelope(tc.data)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error = %v (%T), want *DecodeError", err, err)
			}
			if de.Reason != tc.wantReason {
				t.Errorf("reason = %q, want %q (error: %v)", de.Reason, tc.wantReason, err)
			}
			if de.EventID != tc.wantEventID {
				t.Errorf("event id = %q, want %q", de.EventID, tc.wantEventID)
			}
			if de.Unwrap() == nil {
				t.Errorf("no underlying error")
			}
			if ev != nil {
				t.Errorf("event = %v, want nil", ev)
			}
			if (env != nil) != tc.wantEnv {
				t.Errorf("envelope = %v, want present: %v", env, tc.wantEnv)
			}
		})
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}
