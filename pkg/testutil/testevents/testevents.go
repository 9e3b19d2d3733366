// Package testevents builds valid stat events and their JSON for the gateway's tests.
package testevents

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
)

// Valid returns a complete, consistent batting line (2-for-4 with a double and a home run)
// of player mlbID in a game whose id ends in n, without an event id.
func Valid(mlbID int64, n int) *statsv1.StatEvent {
	return &statsv1.StatEvent{
		Player: &statsv1.Player{MlbId: mlbID, Name: fmt.Sprintf("Player %d", mlbID), Team: "LAD"},
		Game: &statsv1.Game{
			GameId:   fmt.Sprintf("SDN2024%05d", n),
			Date:     "2024-03-20",
			Opponent: "SD",
			HomeAway: statsv1.HomeAway_HOME_AWAY_AWAY,
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
		},
		Source: "test",
	}
}

// Batch returns n valid events of players 100000, 100001, ... (so they spread over shards),
// with ids when withIDs is set.
func Batch(n int, withIDs bool) []*statsv1.StatEvent {
	events := make([]*statsv1.StatEvent, n)
	for i := range events {
		events[i] = Valid(int64(100000+i), i)
		if withIDs {
			events[i].EventId = fmt.Sprintf("test-event-%04d", i)
		}
	}
	return events
}

// JSON renders one event in protojson, on one line.
func JSON(t testing.TB, ev *statsv1.StatEvent) string {
	t.Helper()
	data, err := protojson.MarshalOptions{Multiline: false}.Marshal(ev)
	if err != nil {
		t.Fatalf("marshal event: %v", err)
	}
	// protojson output is randomly spaced to discourage byte comparisons; the gateway must
	// not care, but a compact form keeps NDJSON lines tidy.
	return strings.Join(strings.Fields(string(data)), " ")
}

// JSONArray renders events as a JSON array.
func JSONArray(t testing.TB, events []*statsv1.StatEvent) string {
	t.Helper()
	parts := make([]string, len(events))
	for i, ev := range events {
		parts[i] = JSON(t, ev)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// NDJSON renders events one per line.
func NDJSON(t testing.TB, events []*statsv1.StatEvent) string {
	t.Helper()
	var b strings.Builder
	for _, ev := range events {
		b.WriteString(JSON(t, ev))
		b.WriteByte('\n')
	}
	return b.String()
}
