package publish

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/testutil/testevents"
)

// envelopeBatch is a batch with every kind of event the gateway publishes: full lines,
// a retraction, one without an id, an empty one, names outside ASCII.
func envelopeBatch() []*statsv1.StatEvent {
	events := testevents.Batch(20, true)
	events[3].EventId = ""
	events[4].Player.Name = "Ronald Acuña Jr. ✓"
	events[5].SourceTime = timestamppb.New(time.Date(2024, 3, 20, 19, 5, 0, 123, time.UTC))
	events[6].Batting = nil
	events[6].Retraction = &statsv1.Retraction{Reason: "duplicate line"}
	events[7].Version = 1 << 40
	return append(events, &statsv1.StatEvent{}, &statsv1.StatEvent{EventId: "only-an-id"})
}

// TestBatchEnvelopesMatchEncodeProducerEnvelope checks that the batch encoder writes every
// record byte for byte as statevent.EncodeProducerEnvelope does, with and without a trace
// context and a producer.
func TestBatchEnvelopesMatchEncodeProducerEnvelope(t *testing.T) {
	acceptedAt := time.Date(2026, 12, 1, 17, 0, 0, 987654321, time.UTC)
	for _, tc := range []struct {
		producer string
		carrier  map[string]string
	}{
		{"", nil},
		{"bench", map[string]string{}},
		{"league-feed", map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
			"baggage": "a=1,b=2", "tracestate": "congo=t61rcWkgMzE"}},
	} {
		events := envelopeBatch()
		want, wantTotal, err := encodeEach(tc.producer, acceptedAt, tc.carrier, events)
		if err != nil {
			t.Fatal(err)
		}
		got, gotTotal, ok := encodeBatch(tc.producer, acceptedAt, tc.carrier, events)
		if !ok {
			t.Fatalf("producer %q: encodeBatch refused a batch encodeEach wrote", tc.producer)
		}
		if gotTotal != wantTotal || len(got) != len(want) {
			t.Fatalf("producer %q: %d records of %d bytes, want %d of %d", tc.producer, len(got), gotTotal, len(want), wantTotal)
		}
		for i := range want {
			if !bytes.Equal(got[i].data, want[i].data) || got[i].key != want[i].key {
				t.Errorf("producer %q, event %d: record\n%x key %s, want\n%x key %s", tc.producer, i, got[i].data, got[i].key, want[i].data, want[i].key)
			}
			if cap(got[i].data) != len(got[i].data) {
				t.Errorf("event %d: record capacity %d beyond its length %d: an append would overwrite the next", i, cap(got[i].data), len(got[i].data))
			}
		}
	}
}

// TestEncodeRefusalsAreEncodeEach's: a batch the batch encoder cannot write fails as it did
// when every event was encoded alone.
func TestEncodeRefusalsAreEncodeEachs(t *testing.T) {
	huge := testevents.Valid(1, 1)
	huge.EventId = "huge"
	huge.Player.Name = strings.Repeat("x", MaxRecordBytes)
	notUTF8 := testevents.Valid(2, 2)
	notUTF8.Source = "\xff"
	p := &Publisher{now: time.Now}
	for _, tc := range []struct {
		name     string
		producer string
		events   []*statsv1.StatEvent
	}{
		{"too large", "bench", []*statsv1.StatEvent{testevents.Valid(3, 3), huge}},
		{"nil event", "bench", []*statsv1.StatEvent{testevents.Valid(3, 3), nil}},
		{"not UTF-8", "bench", []*statsv1.StatEvent{notUTF8}},
		{"producer not UTF-8", "\xff", []*statsv1.StatEvent{testevents.Valid(3, 3)}},
	} {
		// encode reads the clock itself: the same instant, or the records' sizes may differ
		// by the acceptance time's varint (a byte of nanoseconds).
		at := time.Now()
		p.now = func() time.Time { return at }
		_, _, wantErr := encodeEach(tc.producer, at, nil, tc.events)
		if wantErr == nil {
			t.Fatalf("%s: encodeEach took the batch", tc.name)
		}
		if _, _, ok := encodeBatch(tc.producer, at, nil, tc.events); ok {
			t.Errorf("%s: encodeBatch took a batch encodeEach refuses: %v", tc.name, wantErr)
		}
		_, _, err := p.encode(t.Context(), tc.producer, tc.events)
		if fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Errorf("%s: encode error %v, want %v", tc.name, err, wantErr)
		}
	}
	var tooLarge *RecordTooLargeError
	if _, _, err := p.encode(t.Context(), "", []*statsv1.StatEvent{huge}); !errors.As(err, &tooLarge) || tooLarge.Index != 0 {
		t.Errorf("a record over the limit: %v, want a *RecordTooLargeError of event 0", err)
	}
}

// BenchmarkEncode compares encoding a 100-event batch one event at a time with
// EncodeProducerEnvelope (before issue 13) and into one buffer.
func BenchmarkEncode(b *testing.B) {
	events := testevents.Batch(100, true)
	carrier := map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	at := time.Now()
	b.Run("each", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, _, err := encodeEach("bench", at, carrier, events); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("batch", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, _, ok := encodeBatch("bench", at, carrier, events); !ok {
				b.Fatal("refused")
			}
		}
	})
}
