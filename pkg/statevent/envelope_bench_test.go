package statevent_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/boxscore-dev/boxscore/pkg/statevent"
	"github.com/boxscore-dev/boxscore/pkg/testutil/testevents"
)

// benchEnvelope is a record body as the gateway writes it: a complete line, a producer and
// a W3C trace context.
func benchEnvelope(b *testing.B) []byte {
	b.Helper()
	ev := testevents.Valid(660271, 1)
	ev.EventId = "0190f5a2-7b1c-7cde-8a3b-1234567890ab"
	ev.Version = 3
	ev.SourceTime = timestamppb.New(time.Date(2024, 3, 21, 4, 0, 0, 0, time.UTC))
	data, err := statevent.EncodeProducerEnvelope(ev, "scorer", time.Date(2024, 3, 21, 5, 6, 7, 0, time.UTC),
		map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
	if err != nil {
		b.Fatalf("EncodeProducerEnvelope: %v", err)
	}
	return data
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	data := benchEnvelope(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := statevent.DecodeEnvelope(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodedRecord decodes the same record as BenchmarkDecodeEnvelope with
// DecodedRecord.Decode, into one DecodedRecord reused, as the transformer reuses its own
// across a request's records.
func BenchmarkDecodedRecord(b *testing.B) {
	data := benchEnvelope(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var r statevent.DecodedRecord
	for b.Loop() {
		if err := r.Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}
