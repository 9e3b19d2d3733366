package statevent

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
)

// FuzzDecodeEnvelope feeds arbitrary record bodies to DecodeEnvelope and the rules after
// it, as the transformer does: nothing may panic, every error is a *DecodeError with a
// known reason, an event that decodes is one the envelope carries, and an event that passes
// Normalize and ValidateShape has only normalized, storable text.
func FuzzDecodeEnvelope(f *testing.F) {
	good, err := EncodeProducerEnvelope(validEvent(), "demo", time.Unix(1700000000, 0), map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	retraction, err := EncodeProducerEnvelope(validRetraction(), "ops", time.Unix(1700000000, 0), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(retraction)
	f.Fuzz(func(t *testing.T, data []byte) {
		env, ev, err := DecodeEnvelope(data)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
			switch de.Reason {
			case ReasonEnvelopeUndecodable, ReasonUnknownContentType, ReasonPayloadUndecodable:
			default:
				t.Fatalf("unknown reason %q", de.Reason)
			}
			if ev != nil {
				t.Fatal("an event returned with an error")
			}
			return
		}
		if env == nil || ev == nil {
			t.Fatal("no error, but no envelope or event")
		}
		Normalize(ev)
		if len(ValidateShape(ev)) > 0 {
			return
		}
		_ = CheckConsistency(ev)
		for _, s := range []string{ev.GetEventId(), ev.GetPlayer().GetName(), ev.GetPlayer().GetTeam(), ev.GetGame().GetGameId(),
			ev.GetGame().GetDate(), ev.GetGame().GetOpponent(), ev.GetSource(), ev.GetRetraction().GetReason()} {
			if !IsNormalizedText(s) {
				t.Errorf("accepted text %q is not normalized storable text", s)
			}
		}
		again := proto.CloneOf(ev)
		Normalize(again)
		if !proto.Equal(ev, again) {
			t.Errorf("Normalize is not idempotent")
		}
	})
}

// FuzzNormalizeText checks the text rules on arbitrary strings: normalizing is idempotent,
// for text and for codes, and normalized text that passes the character check is storable,
// normalized text (IsNormalizedText).
func FuzzNormalizeText(f *testing.F) {
	for _, s := range []string{"LAN202409290 ", " lad", "Jose\u0301", "i\u0307", "\u00a0x\u0085", "a\x00b", "\xff", "\u202eabc", " \u0301x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, normalize := range map[string]func(string) string{"text": normalizeText, "code": normalizeCode} {
			once := normalize(s)
			if twice := normalize(once); twice != once {
				t.Fatalf("%s: %q normalized to %q, then to %q", name, s, once, twice)
			}
			if reason, _ := textCharProblem(once, "s"); reason == "" && !IsNormalizedText(once) {
				t.Fatalf("%s: %q normalized to %q, which passes the character check but is not normalized text", name, s, once)
			}
		}
	})
}
