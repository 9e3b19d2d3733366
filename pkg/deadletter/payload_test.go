package deadletter_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/boxscore-dev/boxscore/pkg/deadletter"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

func TestDecodePayloadSubject(t *testing.T) {
	record := func(ev *statsv1.StatEvent) []byte {
		t.Helper()
		b, err := statevent.EncodeEnvelope(ev, time.Unix(0, 0), nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	row, err := protojson.Marshal(&warehousev1.BattingGameRow{EventId: "e", Player: &statsv1.Player{MlbId: 7}, GameId: "G7"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, stage string
		payload     []byte
		form        string
		want        deadletter.Subject
	}{
		{"record", "validate", record(&statsv1.StatEvent{Player: &statsv1.Player{MlbId: 660271}, Game: &statsv1.Game{GameId: "G1"}}),
			deadletter.FormEnvelope, deadletter.Subject{PlayerID: 660271, HasPlayer: true, GameID: "G1"}},
		{"record without player", "validate", record(&statsv1.StatEvent{Game: &statsv1.Game{GameId: "G2"}}),
			deadletter.FormEnvelope, deadletter.Subject{GameID: "G2"}},
		{"game id with NUL", "validate", record(&statsv1.StatEvent{Player: &statsv1.Player{MlbId: 1}, Game: &statsv1.Game{GameId: "G\x00"}}),
			deadletter.FormEnvelope, deadletter.Subject{PlayerID: 1, HasPlayer: true, GameID: "G\uFFFD"}},
		{"load row", "load", row, deadletter.FormRow, deadletter.Subject{PlayerID: 7, HasPlayer: true, GameID: "G7"}},
		{"row under another stage", "validate", row, deadletter.FormRow, deadletter.Subject{PlayerID: 7, HasPlayer: true, GameID: "G7"}},
		{"garbage", "decode", []byte{0xff, 0x00, 0x01}, deadletter.FormUnknown, deadletter.Subject{}},
		{"empty", "decode", nil, deadletter.FormNone, deadletter.Subject{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := deadletter.DecodePayload(tc.stage, tc.payload)
			if d.Form != tc.form {
				t.Errorf("form = %s (%v), want %s", d.Form, d.Err, tc.form)
			}
			if got := d.Subject(); got != tc.want {
				t.Errorf("subject = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// The producer shows wherever a payload names one, and a retraction row decodes back to a
// retraction (no batting line), so `boxscore dlq replay` resends what was refused.
func TestDecodePayloadProducerAndRetraction(t *testing.T) {
	ev := &statsv1.StatEvent{EventId: "e1", Player: &statsv1.Player{MlbId: 1}, Game: &statsv1.Game{GameId: "G1"}}
	record, err := statevent.EncodeProducerEnvelope(ev, "demo", time.Unix(0, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := deadletter.DecodePayload("validate", record); d.Producer() != "demo" {
		t.Errorf("envelope producer = %q, want demo", d.Producer())
	}
	row, err := protojson.Marshal(&warehousev1.BattingGameRow{EventId: "r1", Version: 4, Player: &statsv1.Player{MlbId: 7}, GameId: "G7",
		Producer: "ops", Retraction: &statsv1.Retraction{Reason: "wrong player"}})
	if err != nil {
		t.Fatal(err)
	}
	d := deadletter.DecodePayload("load", row)
	if d.Form != deadletter.FormRow || d.Producer() != "ops" {
		t.Fatalf("row: form %s producer %q", d.Form, d.Producer())
	}
	if d.Event.GetRetraction().GetReason() != "wrong player" || d.Event.GetBatting() != nil || d.Event.GetVersion() != 4 {
		t.Errorf("event from a retraction row = %v, want a retraction without batting", d.Event)
	}
	if d := deadletter.DecodePayload("decode", []byte{0xff}); d.Producer() != "" {
		t.Errorf("undecodable payload producer = %q, want empty", d.Producer())
	}
}
