package statevent

import (
	"testing"

	"google.golang.org/protobuf/proto"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
)

// validEvent returns a complete, consistent line: Ohtani, 2-for-4 with a double and a home
// run, a walk and a strikeout.
func validEvent() *statsv1.StatEvent {
	return &statsv1.StatEvent{
		EventId: "0190f5a2-7b1c-7cde-8a3b-1234567890ab",
		Player:  &statsv1.Player{MlbId: 660271, Name: "Shohei Ohtani", Team: "LAD"},
		Game: &statsv1.Game{
			GameId:     "SDN202403200",
			Date:       "2024-03-20",
			GameNumber: 0,
			Opponent:   "SD",
			HomeAway:   statsv1.HomeAway_HOME_AWAY_AWAY,
			Season:     2024,
		},
		Batting: &statsv1.BattingLine{
			PlateAppearances:     proto.Int32(5),
			AtBats:               proto.Int32(4),
			Runs:                 proto.Int32(1),
			Hits:                 proto.Int32(2),
			Doubles:              proto.Int32(1),
			Triples:              proto.Int32(0),
			HomeRuns:             proto.Int32(1),
			Rbi:                  proto.Int32(3),
			BaseOnBalls:          proto.Int32(1),
			IntentionalWalks:     proto.Int32(0),
			StrikeOuts:           proto.Int32(1),
			HitByPitch:           proto.Int32(0),
			SacBunts:             proto.Int32(0),
			SacFlies:             proto.Int32(0),
			StolenBases:          proto.Int32(0),
			CaughtStealing:       proto.Int32(0),
			GroundIntoDoublePlay: proto.Int32(0),
			TotalBases:           proto.Int32(6),
		},
		Version: 1,
		Source:  "mlb-statsapi",
	}
}

// fieldReason is the part of a violation that tests compare exactly.
type fieldReason struct{ field, reason string }

func fieldReasons(vs []Violation) []fieldReason {
	out := make([]fieldReason, 0, len(vs))
	for _, v := range vs {
		out = append(out, fieldReason{v.Field, v.Reason})
	}
	return out
}

func assertViolations(t *testing.T, got []Violation, want []fieldReason) {
	t.Helper()
	gotFR := fieldReasons(got)
	if len(gotFR) != len(want) {
		t.Fatalf("violations = %v, want %v", got, want)
	}
	for i := range want {
		if gotFR[i] != want[i] {
			t.Fatalf("violation %d = %+v, want %+v (all: %v)", i, gotFR[i], want[i], got)
		}
		if got[i].Detail == "" {
			t.Errorf("violation %d (%+v) has no detail", i, gotFR[i])
		}
	}
}
