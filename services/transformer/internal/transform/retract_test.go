package transform

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

func producerRecord(t *testing.T, seq int, ev *statsv1.StatEvent, producer string, acceptedAt time.Time) *transformv1.SourceRecord {
	t.Helper()
	data, err := statevent.EncodeProducerEnvelope(ev, producer, acceptedAt, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &transformv1.SourceRecord{Position: position(seq), PartitionKey: "660271", Data: data}
}

func retractionEvent() *statsv1.StatEvent {
	return &statsv1.StatEvent{
		EventId:    "retract-1",
		Player:     &statsv1.Player{MlbId: 660271},
		Game:       &statsv1.Game{GameId: "SDN202403200 "},
		Version:    4,
		Retraction: &statsv1.Retraction{Reason: " reported for the wrong player "},
	}
}

func TestTransformRetraction(t *testing.T) {
	row, rej := transformOne(t, producerRecord(t, 1, retractionEvent(), "ops", testAcceptedAt))
	if rej != nil {
		t.Fatalf("rejected: %v", rej)
	}
	if row.GetRetraction().GetReason() != "reported for the wrong player" || row.GetGameId() != "SDN202403200" ||
		row.GetPlayer().GetMlbId() != 660271 || row.GetVersion() != 4 || row.GetEventId() != "retract-1" || row.GetProducer() != "ops" {
		t.Errorf("retraction row = %v", row)
	}
	for _, c := range statevent.RowCounts(row) {
		if c.Value != 0 {
			t.Errorf("retraction row has %s = %d", c.Name, c.Value)
		}
	}
	if !proto.Equal(row.GetAcceptedAt(), timestamppb.New(testAcceptedAt)) || !proto.Equal(row.GetPosition(), position(1)) {
		t.Errorf("accepted_at %v, position %v", row.GetAcceptedAt(), row.GetPosition())
	}

	// A retraction with a batting line is refused, and the rejection names its producer.
	bad := retractionEvent()
	bad.Batting = validEvent().Batting
	_, rej = transformOne(t, producerRecord(t, 2, bad, "ops", testAcceptedAt))
	if rej == nil || rej.GetReason() != "not_allowed" || rej.GetField() != "batting" || rej.GetProducer() != "ops" {
		t.Errorf("retraction with batting: rejection %v", rej)
	}
}

func TestTransformProducerAndNormalizedText(t *testing.T) {
	ev := validEvent()
	ev.Game.GameId = "SDN202403200 "
	ev.Player.Name = " Shohei Ohtani"
	row, rej := transformOne(t, producerRecord(t, 1, ev, "demo", testAcceptedAt))
	if rej != nil {
		t.Fatalf("rejected: %v", rej)
	}
	if row.GetGameId() != "SDN202403200" || row.GetPlayer().GetName() != "Shohei Ohtani" || row.GetProducer() != "demo" {
		t.Errorf("row game id %q, name %q, producer %q", row.GetGameId(), row.GetPlayer().GetName(), row.GetProducer())
	}
	// A rejected record keeps its producer for the dead letter.
	ev = validEvent()
	ev.Batting.Hits = proto.Int32(9)
	_, rej = transformOne(t, producerRecord(t, 2, ev, "demo", testAcceptedAt))
	if rej == nil || rej.GetProducer() != "demo" {
		t.Errorf("rejection %v, want producer demo", rej)
	}
	// A producer with a control character is refused: it would be stored.
	_, rej = transformOne(t, producerRecord(t, 3, validEvent(), "de\x00mo", testAcceptedAt))
	if rej == nil || rej.GetReason() != ReasonInvalidText || rej.GetField() != "envelope.producer" {
		t.Errorf("NUL in producer: rejection %v", rej)
	}
	_, rej = transformOne(t, producerRecord(t, 4, validEvent(), strings.Repeat("p", MaxProducerLength+1), testAcceptedAt))
	if rej == nil || rej.GetField() != "envelope.producer" {
		t.Errorf("overlong producer: rejection %v", rej)
	}
}

// The version ceiling is checked against the envelope's accepted_at: a version the
// gateway could take passes, one above is refused, and a record without accepted_at did
// not come through the gateway.
func TestTransformVersionCeiling(t *testing.T) {
	ceiling := statevent.VersionCeiling(testAcceptedAt)
	ev := validEvent()
	ev.Version = ceiling
	if _, rej := transformOne(t, producerRecord(t, 1, ev, "demo", testAcceptedAt)); rej != nil {
		t.Errorf("version at the ceiling rejected: %v", rej)
	}
	ev.Version = ceiling + 1
	if _, rej := transformOne(t, producerRecord(t, 2, ev, "demo", testAcceptedAt)); rej == nil || rej.GetReason() != statevent.ReasonVersionAboveCeiling {
		t.Errorf("version above the ceiling: rejection %v", rej)
	}
	r := retractionEvent()
	r.Version = 1<<63 - 1
	if _, rej := transformOne(t, producerRecord(t, 3, r, "ops", testAcceptedAt)); rej == nil || rej.GetReason() != statevent.ReasonVersionAboveCeiling {
		t.Errorf("retraction at max int64: rejection %v", rej)
	}

	payload, err := proto.Marshal(validEvent())
	if err != nil {
		t.Fatal(err)
	}
	noAcceptedAt := mustMarshal(t, &streamv1.Envelope{ContentType: statevent.ContentTypeStatEventProto, Payload: payload, EventId: validEvent().EventId})
	if _, rej := transformOne(t, rawRecord(4, noAcceptedAt)); rej == nil || rej.GetField() != "envelope.acceptedAt" {
		t.Errorf("no accepted_at: rejection %v", rej)
	}
}
