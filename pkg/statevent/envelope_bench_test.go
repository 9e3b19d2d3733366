package statevent_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// benchEnvelope is a record body as the gateway writes it: a complete line, a producer and
// a W3C trace context.
func benchEnvelope(b *testing.B) []byte {
	b.Helper()
	i := proto.Int32
	ev := &statsv1.StatEvent{
		EventId: "0190f5a2-7b1c-7cde-8a3b-1234567890ab",
		Player:  &statsv1.Player{MlbId: 660271, Name: "Shohei Ohtani", Team: "LAD"},
		Game: &statsv1.Game{
			GameId: "SDN202403200", Date: "2024-03-20", GameNumber: 1, Opponent: "SD",
			HomeAway: statsv1.HomeAway_HOME_AWAY_HOME, Season: 2024,
		},
		Batting: &statsv1.BattingLine{
			PlateAppearances: i(5), AtBats: i(4), Runs: i(1), Hits: i(2), Doubles: i(1), Triples: i(0),
			HomeRuns: i(1), Rbi: i(3), BaseOnBalls: i(1), IntentionalWalks: i(0), StrikeOuts: i(1),
			HitByPitch: i(0), SacBunts: i(0), SacFlies: i(0), StolenBases: i(1), CaughtStealing: i(0),
			GroundIntoDoublePlay: i(0), TotalBases: i(6),
		},
		Version:    3,
		SourceTime: timestamppb.New(time.Date(2024, 3, 21, 4, 0, 0, 0, time.UTC)),
		Source:     "mlb-statsapi",
	}
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
