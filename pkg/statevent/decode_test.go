package statevent

import (
	"errors"
	"maps"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/boxscore-dev/boxscore/pkg/testutil/fuzzcorpus"
)

// checkDecodedRecordMatches fails t when DecodedRecord.Decode gives another answer than
// DecodeEnvelope for data: another error, other envelope fields, another event (presence
// of every message and optional count, unknown fields included), another trace context.
// It reports whether the fast path read the record.
func checkDecodedRecordMatches(t *testing.T, data []byte) (fast bool) {
	t.Helper()
	var r DecodedRecord
	err := r.Decode(data)
	env, ev, wantErr := DecodeEnvelope(data)
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("Decode(%q) error %v, DecodeEnvelope's %v", data, err, wantErr)
	}
	if err != nil {
		var got, want *DecodeError
		if !errors.As(err, &got) || !errors.As(wantErr, &want) || got.Reason != want.Reason || got.EventID != want.EventID {
			t.Fatalf("Decode(%q) error %#v, DecodeEnvelope's %#v", data, err, wantErr)
		}
	}
	if r.fast && err != nil {
		t.Fatalf("Decode(%q) read the record on the fast path, but DecodeEnvelope fails: %v", data, wantErr)
	}
	if r.ContentType != env.GetContentType() || r.EventID != env.GetEventId() || r.Producer != env.GetProducer() {
		t.Errorf("Decode(%q) envelope fields %q, %q, %q; DecodeEnvelope's %q, %q, %q", data,
			r.ContentType, r.EventID, r.Producer, env.GetContentType(), env.GetEventId(), env.GetProducer())
	}
	if (r.AcceptedAt == nil) != (env.GetAcceptedAt() == nil) || !proto.Equal(r.AcceptedAt, env.GetAcceptedAt()) {
		t.Errorf("Decode(%q) accepted_at %v, DecodeEnvelope's %v", data, r.AcceptedAt, env.GetAcceptedAt())
	}
	if got, want := r.Traceparent(), env.GetTraceContext()["traceparent"]; got != want {
		t.Errorf("Decode(%q) traceparent %q, DecodeEnvelope's %q", data, got, want)
	}
	if got, want := r.TraceContext(), env.GetTraceContext(); !maps.Equal(got, want) {
		t.Errorf("Decode(%q) trace context %v, DecodeEnvelope's %v", data, got, want)
	}
	if (r.Event == nil) != (ev == nil) || !proto.Equal(r.Event, ev) {
		t.Errorf("Decode(%q) event %v, DecodeEnvelope's %v", data, r.Event, ev)
	}
	return r.fast
}

// Builders of envelopes field by field, for the forms an encoder does not write.
func tag(b []byte, num protowire.Number, typ protowire.Type) []byte {
	return protowire.AppendTag(b, num, typ)
}

func str(b []byte, num protowire.Number, s string) []byte {
	return protowire.AppendString(tag(b, num, protowire.BytesType), s)
}

func msg(b []byte, num protowire.Number, m []byte) []byte {
	return protowire.AppendBytes(tag(b, num, protowire.BytesType), m)
}

func varint(b []byte, num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(tag(b, num, protowire.VarintType), v)
}

func traceEntry(key, value string) []byte {
	return str(str(nil, 1, key), 2, value)
}

// envelopeOf wraps payload in an envelope with the content type, then extra fields.
func envelopeOf(payload []byte, extra ...[]byte) []byte {
	b := str(nil, 1, ContentTypeStatEventProto)
	b = msg(b, 2, payload)
	for _, e := range extra {
		b = append(b, e...)
	}
	return b
}

const seedTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// decodeSeeds are record bodies as encoders write them, and in every form the wire allows
// that they do not write: duplicated and merged fields, unknown fields, wrong wire types,
// invalid UTF-8, truncated and overlong varints, map entries out of order or incomplete.
// fast lists those the fast path must read itself.
func decodeSeeds(tb testing.TB) (all [][]byte, fast [][]byte) {
	tb.Helper()
	full := validEvent()
	full.SourceTime = timestamppb.New(time.Date(2024, 3, 21, 4, 0, 0, 5, time.UTC))
	gateway, err := EncodeProducerEnvelope(full, "scorer", time.Date(2024, 3, 21, 5, 6, 7, 8, time.UTC),
		map[string]string{"traceparent": seedTraceparent, "tracestate": "a=b", "baggage": "k=v"})
	if err != nil {
		tb.Fatal(err)
	}
	retraction, err := EncodeProducerEnvelope(validRetraction(), "ops", time.Unix(1700000000, 0), nil)
	if err != nil {
		tb.Fatal(err)
	}
	bare, err := EncodeEnvelope(validEvent(), time.Time{}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	payload, err := proto.Marshal(validEvent())
	if err != nil {
		tb.Fatal(err)
	}
	neg := uint64(1<<64 - 3) // -3 as a ten-byte varint
	fast = [][]byte{
		gateway, retraction, bare,
		{}, // an empty envelope: no content type, refused
		envelopeOf(nil),
		envelopeOf(payload, str(nil, 3, "first"), str(nil, 3, "second"), str(nil, 6, "p1"), str(nil, 6, "")),
		// The last payload and content type win.
		envelopeOf([]byte("garbage"), msg(nil, 2, payload)),
		append(str(nil, 1, "text/plain"), envelopeOf(payload)...),
		envelopeOf(payload, str(nil, 1, "application/x-protobuf;proto=boxscore.stats.v1.StatEvent")),
		envelopeOf(payload, str(nil, 1, "Application/X-Protobuf; Proto=boxscore.stats.v1.StatEvent")),
		// Map entries: repeated keys (the last wins), missing key or value, fields reversed
		// or repeated inside an entry, an empty entry.
		envelopeOf(payload, msg(nil, 5, traceEntry("traceparent", "x")), msg(nil, 5, traceEntry("traceparent", seedTraceparent))),
		envelopeOf(payload, msg(nil, 5, str(nil, 1, "traceparent")), msg(nil, 5, str(nil, 2, "only a value"))),
		envelopeOf(payload, msg(nil, 5, str(str(nil, 2, seedTraceparent), 1, "traceparent"))),
		envelopeOf(payload, msg(nil, 5, str(str(str(nil, 1, "traceparent"), 2, "a"), 2, seedTraceparent))),
		envelopeOf(payload, msg(nil, 5, nil), msg(nil, 5, traceEntry("", ""))),
		envelopeOf(payload, msg(nil, 5, traceEntry("traceparent", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"))),
		// accepted_at given twice is merged; out-of-range values decode (CheckValid refuses them later).
		envelopeOf(payload, msg(nil, 4, varint(nil, 1, 100)), msg(nil, 4, varint(nil, 2, 7))),
		envelopeOf(payload, msg(nil, 4, varint(varint(nil, 1, neg), 2, neg))),
		envelopeOf(payload, msg(nil, 4, nil)),
		// Event: scalars given twice (the last wins), messages given twice (merged).
		envelopeOf(append(append(payload[:len(payload):len(payload)], str(nil, 1, "second id")...), varint(nil, 5, 9)...)),
		envelopeOf(msg(msg(nil, 2, varint(str(nil, 2, "A"), 1, 1)), 2, str(nil, 3, "LAD"))),
		envelopeOf(msg(msg(nil, 4, varint(varint(nil, 1, 5), 4, 2)), 4, varint(varint(nil, 4, 3), 18, 0))),
		envelopeOf(msg(msg(nil, 3, str(varint(nil, 5, 1), 1, "G1")), 3, varint(varint(varint(nil, 3, neg), 5, 77), 6, 1<<40))),
		envelopeOf(msg(msg(nil, 8, str(nil, 1, "a")), 8, nil)),
		envelopeOf(msg(nil, 8, nil)),
		envelopeOf(msg(msg(msg(msg(nil, 2, nil), 3, nil), 4, nil), 6, nil)),
		envelopeOf(msg(nil, 6, varint(varint(nil, 2, 1<<33), 1, neg))),
		// Negative and overflowing values of every integer kind.
		envelopeOf(varint(msg(nil, 4, varint(varint(nil, 1, neg), 2, 1<<32+4)), 5, neg)),
		envelopeOf(msg(nil, 2, varint(nil, 1, neg))),
		// A varint written longer than it needs to be.
		envelopeOf(append(tag(nil, 5, protowire.VarintType), 0x81, 0x80, 0x80, 0x00)),
	}
	counts := []byte{}
	for num := protowire.Number(1); num <= battingCountFields; num++ {
		counts = varint(counts, num, uint64(num))
	}
	fast = append(fast, envelopeOf(msg(nil, 4, counts)))

	declined := [][]byte{
		// Unknown fields, at every level.
		envelopeOf(payload, varint(nil, 99, 1)),
		envelopeOf(append(payload[:len(payload):len(payload)], varint(nil, 99, 1)...)),
		envelopeOf(msg(nil, 2, str(nil, 9, "x"))),
		envelopeOf(msg(nil, 3, varint(nil, 9, 1))),
		envelopeOf(msg(nil, 4, varint(nil, 19, 1))),
		envelopeOf(msg(nil, 8, varint(nil, 2, 1))),
		envelopeOf(msg(nil, 6, varint(nil, 3, 1))),
		envelopeOf(payload, msg(nil, 4, varint(nil, 3, 1))),
		envelopeOf(payload, msg(nil, 5, append(traceEntry("traceparent", seedTraceparent), varint(nil, 3, 1)...))),
		// Wrong wire types for known fields (proto.Unmarshal keeps them as unknown).
		envelopeOf(payload, varint(nil, 3, 1)),
		envelopeOf(varint(nil, 1, 1)),
		envelopeOf(str(nil, 5, "1")),
		envelopeOf(msg(nil, 4, msg(nil, 1, protowire.AppendVarint(nil, 3)))), // a "packed" count
		envelopeOf(msg(nil, 2, str(nil, 1, "1"))),
		envelopeOf(payload, msg(nil, 5, varint(nil, 1, 1))),
		envelopeOf(payload, protowire.AppendFixed32(tag(nil, 3, protowire.Fixed32Type), 1)),
		envelopeOf(payload, protowire.AppendFixed64(tag(nil, 30, protowire.Fixed64Type), 1)),
		envelopeOf(payload, tag(tag(nil, 30, protowire.StartGroupType), 30, protowire.EndGroupType)),
		envelopeOf(payload, tag(nil, 30, protowire.EndGroupType)),
		envelopeOf(payload, tag(nil, 30, protowire.StartGroupType)),
		// Invalid UTF-8 in every string.
		envelopeOf(payload, str(nil, 3, "\xff")),
		envelopeOf(payload, str(nil, 6, "a\xc3")),
		envelopeOf(payload, msg(nil, 5, traceEntry("\xff", "v"))),
		envelopeOf(payload, msg(nil, 5, traceEntry("traceparent", "\xff"))),
		envelopeOf(str(nil, 1, "\xff")),
		envelopeOf(msg(nil, 2, str(nil, 2, "\xff"))),
		envelopeOf(msg(nil, 3, str(nil, 4, "\xff"))),
		envelopeOf(msg(nil, 8, str(nil, 1, "\xff"))),
		append(str(nil, 1, "\xff"), envelopeOf(payload)...),
		// Field number 0, an invalid wire type, an overlong varint.
		envelopeOf(payload, tag(nil, 0, protowire.VarintType), []byte{0}),
		envelopeOf(payload, []byte{0x0f, 0x00}),
		envelopeOf(append(tag(nil, 5, protowire.VarintType), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)),
		envelopeOf(append(tag(nil, 5, protowire.VarintType), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)),
	}
	all = append(append(all, fast...), declined...)
	// Every prefix of the gateway's record: truncated at every byte.
	for i := range gateway {
		all = append(all, gateway[:i])
	}
	return all, fast
}

// decodeCorpora are the record bodies of this package's and the transformer's fuzz corpora.
var decodeCorpora = []string{
	"testdata/fuzz/FuzzDecodeEnvelope",
	"../../services/transformer/internal/transform/testdata/fuzz/FuzzTransform",
}

func TestDecodedRecordMatchesDecodeEnvelope(t *testing.T) {
	all, fast := decodeSeeds(t)
	for _, data := range all {
		checkDecodedRecordMatches(t, data)
	}
	for _, dir := range decodeCorpora {
		for _, data := range fuzzcorpus.Bytes(t, dir) {
			checkDecodedRecordMatches(t, data)
		}
	}
	// The fast path is what the transformer relies on for speed: it must read every
	// well-formed record itself, whatever duplicates or merges it holds.
	for _, data := range fast {
		var r DecodedRecord
		err := r.Decode(data)
		if !r.fast && err == nil {
			t.Errorf("Decode(%q) left a well-formed record to DecodeEnvelope", data)
		}
	}
	// Every single-byte change of the gateway's record.
	gateway := fast[0]
	for i := range gateway {
		for _, c := range []byte{0x00, 0x01, 0x02, 0x07, 0x0a, 0x12, 0x7f, 0x80, 0xff} {
			mutated := append([]byte(nil), gateway...)
			mutated[i] = c
			checkDecodedRecordMatches(t, mutated)
		}
	}
}

func TestDecodedRecordReuse(t *testing.T) {
	all, _ := decodeSeeds(t)
	// One DecodedRecord through every seed: nothing of a record survives into the next.
	var r DecodedRecord
	for _, data := range all {
		err := r.Decode(data)
		var fresh DecodedRecord
		wantErr := fresh.Decode(data)
		if (err == nil) != (wantErr == nil) || !proto.Equal(r.Event, fresh.Event) || r.EventID != fresh.EventID ||
			r.Traceparent() != fresh.Traceparent() || !proto.Equal(r.AcceptedAt, fresh.AcceptedAt) {
			t.Errorf("Decode(%q) into a used record: %v %v, into a new one %v %v", data, r.Event, err, fresh.Event, wantErr)
		}
	}
}

// FuzzDecodedRecordMatchesDecodeEnvelope checks that DecodedRecord.Decode gives, for any
// bytes, DecodeEnvelope's answer.
func FuzzDecodedRecordMatchesDecodeEnvelope(f *testing.F) {
	all, _ := decodeSeeds(f)
	for _, data := range all {
		f.Add(data)
	}
	for _, dir := range decodeCorpora {
		for _, data := range fuzzcorpus.Bytes(f, dir) {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecodedRecordMatches(t, data)
	})
}
