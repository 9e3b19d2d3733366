package statevent_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// benchEvents builds n realistic, valid lines, as a producer sends them: some names with
// accents, some team codes in lower case and some text with white space to trim.
func benchEvents(n int) []*statsv1.StatEvent {
	i := proto.Int32
	names := []string{"Shohei Ohtani", "José Ramírez", "Mookie Betts", " Freddie Freeman ", "Ronald Acuña Jr."}
	teams := []string{"LAD", "cle", "SD", "NYY ", "atl"}
	evs := make([]*statsv1.StatEvent, n)
	for k := range evs {
		evs[k] = &statsv1.StatEvent{
			EventId: fmt.Sprintf("0190f5a2-7b1c-7cde-8a3b-%012d", k),
			Player:  &statsv1.Player{MlbId: int64(660271 + k), Name: names[k%len(names)], Team: teams[k%len(teams)]},
			Game: &statsv1.Game{
				GameId: fmt.Sprintf("SDN2024%02d%02d0", 3+k%6, 1+k%28), Date: fmt.Sprintf("2024-%02d-%02d", 3+k%6, 1+k%28),
				GameNumber: 0, Opponent: "SD", HomeAway: statsv1.HomeAway_HOME_AWAY_HOME,
			},
			Batting: &statsv1.BattingLine{
				PlateAppearances: i(5), AtBats: i(4), Runs: i(1), Hits: i(2), Doubles: i(1), Triples: i(0),
				HomeRuns: i(1), Rbi: i(3), BaseOnBalls: i(1), IntentionalWalks: i(0), StrikeOuts: i(1),
				HitByPitch: i(0), SacBunts: i(0), SacFlies: i(0), StolenBases: i(1), CaughtStealing: i(0),
				GroundIntoDoublePlay: i(0), TotalBases: i(6),
			},
			SourceTime: timestamppb.New(time.Date(2024, 3, 21, 4, 0, 0, 0, time.UTC)),
			Source:     "mlb-statsapi",
		}
	}
	return evs
}

// benchRows builds n storable rows, as the transformer builds them from benchEvents.
func benchRows(n int) []*warehousev1.BattingGameRow {
	rows := make([]*warehousev1.BattingGameRow, n)
	for k := range rows {
		rows[k] = &warehousev1.BattingGameRow{
			EventId: fmt.Sprintf("0190f5a2-7b1c-7cde-8a3b-%012d", k), Version: 1,
			Player: &statsv1.Player{MlbId: int64(660271 + k), Name: "José Ramírez", Team: "CLE"},
			GameId: "SDN202403200", GameDate: "2024-03-20", GameNumber: 0, Season: 2024, Opponent: "SD",
			PlateAppearances: 5, AtBats: 4, Runs: 1, Hits: 2, Singles: 0, Doubles: 1, HomeRuns: 1, Rbi: 3,
			BaseOnBalls: 1, StrikeOuts: 1, StolenBases: 1, TotalBases: 6, ExtraBaseHits: 2, TimesOnBase: 3,
			SourceTime: timestamppb.New(time.Date(2024, 3, 21, 4, 0, 0, 0, time.UTC)),
			AcceptedAt: timestamppb.New(time.Date(2024, 3, 21, 5, 6, 7, 0, time.UTC)),
			TraceId:    "4bf92f3577b34da6a3ce929d0e0e4736", Producer: "scorer",
			Position: &streamv1.RecordPosition{Stream: "stat-events", ShardId: "shardId-000000000000",
				SequenceNumber: "49590338271490256608559692538361571095921575989136588898"},
		}
	}
	return rows
}

// BenchmarkRules applies the transformer's per-record rules to 500 events and 500 rows:
// Normalize, ValidateShape and CheckConsistency on each event, CheckRow on each row.
// Normalize changes the events (trimming, upper-casing) on the first pass only; after it,
// it checks already normalized text, which is what the transformer mostly sees: the
// gateway normalized every event before it entered the stream.
func BenchmarkRules(b *testing.B) {
	evs, rows := benchEvents(500), benchRows(500)
	b.ReportAllocs()
	for b.Loop() {
		for _, ev := range evs {
			statevent.Normalize(ev)
			if vs := statevent.ValidateShape(ev); len(vs) != 0 {
				b.Fatalf("ValidateShape: %v", vs)
			}
			if vs := statevent.CheckConsistency(ev); len(vs) != 0 {
				b.Fatalf("CheckConsistency: %v", vs)
			}
		}
		for _, row := range rows {
			if vs := statevent.CheckRow(row); len(vs) != 0 {
				b.Fatalf("CheckRow: %v", vs)
			}
		}
	}
}

func BenchmarkNormalize(b *testing.B) {
	evs := benchEvents(500)
	b.ReportAllocs()
	for b.Loop() {
		for _, ev := range evs {
			statevent.Normalize(ev)
		}
	}
}

func BenchmarkValidateShape(b *testing.B) {
	evs := benchEvents(500)
	for _, ev := range evs {
		statevent.Normalize(ev)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, ev := range evs {
			if vs := statevent.ValidateShape(ev); len(vs) != 0 {
				b.Fatalf("ValidateShape: %v", vs)
			}
		}
	}
}

func BenchmarkCheckRow(b *testing.B) {
	rows := benchRows(500)
	b.ReportAllocs()
	for b.Loop() {
		for _, row := range rows {
			if vs := statevent.CheckRow(row); len(vs) != 0 {
				b.Fatalf("CheckRow: %v", vs)
			}
		}
	}
}
