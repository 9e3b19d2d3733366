package statevent

import (
	"testing"

	"google.golang.org/protobuf/proto"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
)

func TestCheckConsistency(t *testing.T) {
	i := proto.Int32
	// The base line: PA 5, AB 4, R 1, H 2 (one double, one home run), RBI 3, BB 1, SO 1, TB 6.
	tests := []struct {
		name   string
		mutate func(b *statsv1.BattingLine)
		want   []fieldReason
	}{
		{"valid line", func(b *statsv1.BattingLine) {}, nil},
		{"hitless game", func(b *statsv1.BattingLine) {
			b.Hits, b.Doubles, b.HomeRuns, b.Runs, b.Rbi, b.TotalBases = i(0), i(0), i(0), i(0), i(0), i(0)
		}, nil},
		{"pinch runner who scored without a plate appearance", func(b *statsv1.BattingLine) {
			b.PlateAppearances, b.AtBats, b.Hits, b.Doubles, b.HomeRuns = i(0), i(0), i(0), i(0), i(0)
			b.Rbi, b.BaseOnBalls, b.StrikeOuts, b.TotalBases, b.Runs, b.StolenBases = i(0), i(0), i(0), i(0), i(1), i(1)
		}, nil},

		{"hits exceed at bats", func(b *statsv1.BattingLine) { b.Hits, b.TotalBases = i(5), nil },
			[]fieldReason{{"batting.hits", "hits_exceed_at_bats"}}},
		{"hits equal at bats", func(b *statsv1.BattingLine) { b.Hits, b.StrikeOuts, b.TotalBases = i(4), i(0), nil }, nil},
		{"hits, strikeouts and double plays exceed at bats", func(b *statsv1.BattingLine) { b.StrikeOuts, b.GroundIntoDoublePlay = i(2), i(1) },
			[]fieldReason{{"batting.atBats", "at_bat_outcomes_exceed_at_bats"}}},
		{"hits, strikeouts and double plays fill at bats", func(b *statsv1.BattingLine) { b.StrikeOuts, b.GroundIntoDoublePlay = i(1), i(1) }, nil},

		{"home runs exceed hits", func(b *statsv1.BattingLine) { b.HomeRuns, b.Doubles, b.Runs = i(3), i(0), i(3) },
			[]fieldReason{{"batting.homeRuns", "home_runs_exceed_hits"}}},
		{"extra-base hits exceed hits", func(b *statsv1.BattingLine) { b.Doubles = i(2) },
			[]fieldReason{{"batting.hits", "extra_base_hits_exceed_hits"}}},
		{"triples push extra-base hits over hits", func(b *statsv1.BattingLine) { b.Triples = i(1) },
			[]fieldReason{{"batting.hits", "extra_base_hits_exceed_hits"}}},

		{"at bats exceed plate appearances", func(b *statsv1.BattingLine) { b.PlateAppearances = i(3) },
			[]fieldReason{{"batting.atBats", "at_bats_exceed_plate_appearances"}}},
		{"walk, hit by pitch and at bats exceed plate appearances", func(b *statsv1.BattingLine) { b.HitByPitch = i(1) },
			[]fieldReason{{"batting.plateAppearances", "plate_appearance_outcomes_exceed_plate_appearances"}}},
		{"sacrifice bunt over plate appearances", func(b *statsv1.BattingLine) { b.SacBunts = i(1) },
			[]fieldReason{{"batting.plateAppearances", "plate_appearance_outcomes_exceed_plate_appearances"}}},
		{"sacrifice fly over plate appearances", func(b *statsv1.BattingLine) { b.SacFlies = i(1) },
			[]fieldReason{{"batting.plateAppearances", "plate_appearance_outcomes_exceed_plate_appearances"}}},
		{"plate appearances above the listed outcomes (catcher's interference)", func(b *statsv1.BattingLine) { b.PlateAppearances = i(6) }, nil},

		{"intentional walks exceed walks", func(b *statsv1.BattingLine) { b.IntentionalWalks = i(2) },
			[]fieldReason{{"batting.intentionalWalks", "intentional_walks_exceed_walks"}}},
		{"intentional walks equal walks", func(b *statsv1.BattingLine) { b.IntentionalWalks = i(1) }, nil},

		{"total bases mismatch", func(b *statsv1.BattingLine) { b.TotalBases = i(7) },
			[]fieldReason{{"batting.totalBases", "total_bases_mismatch"}}},
		{"total bases absent", func(b *statsv1.BattingLine) { b.TotalBases = nil }, nil},
		{"total bases with a triple", func(b *statsv1.BattingLine) { b.Hits, b.Triples, b.TotalBases = i(3), i(1), i(9) }, nil},

		{"runs exceed plate appearances plus one", func(b *statsv1.BattingLine) { b.Runs = i(7) },
			[]fieldReason{{"batting.runs", "runs_exceed_plate_appearances"}}},
		{"runs equal plate appearances plus one", func(b *statsv1.BattingLine) { b.Runs = i(6) }, nil},
		{"runs below home runs", func(b *statsv1.BattingLine) { b.Runs = i(0) },
			[]fieldReason{{"batting.runs", "runs_below_home_runs"}}},
		{"rbi below home runs", func(b *statsv1.BattingLine) { b.Rbi = i(0) },
			[]fieldReason{{"batting.rbi", "rbi_below_home_runs"}}},

		{"stolen bases implausible", func(b *statsv1.BattingLine) { b.StolenBases = i(11) },
			[]fieldReason{{"batting.stolenBases", "stolen_bases_implausible"}}},
		{"stolen bases at bound", func(b *statsv1.BattingLine) { b.StolenBases = i(10) }, nil},
		{"caught stealing implausible", func(b *statsv1.BattingLine) { b.CaughtStealing = i(11) },
			[]fieldReason{{"batting.caughtStealing", "caught_stealing_implausible"}}},

		{"several problems, in rule order", func(b *statsv1.BattingLine) {
			b.Hits, b.PlateAppearances, b.IntentionalWalks, b.Rbi = i(5), i(3), i(2), i(0)
		}, []fieldReason{
			{"batting.hits", "hits_exceed_at_bats"},
			{"batting.atBats", "at_bats_exceed_plate_appearances"},
			{"batting.intentionalWalks", "intentional_walks_exceed_walks"},
			{"batting.totalBases", "total_bases_mismatch"},
			{"batting.rbi", "rbi_below_home_runs"},
		}},
		{"missing counts skip the rules that need them", func(b *statsv1.BattingLine) { b.Hits, b.PlateAppearances = nil, nil }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := validEvent()
			tc.mutate(ev.Batting)
			if vs := ValidateShape(ev); !hasOnlyRequired(vs) {
				t.Fatalf("test line fails ValidateShape: %v", vs)
			}
			assertViolations(t, CheckConsistency(ev), tc.want)
		})
	}
}

// hasOnlyRequired reports whether vs holds nothing but "required" violations (the cases that
// remove counts on purpose).
func hasOnlyRequired(vs []Violation) bool {
	for _, v := range vs {
		if v.Reason != "required" {
			return false
		}
	}
	return true
}

func TestCheckConsistencyWithoutBatting(t *testing.T) {
	if vs := CheckConsistency(nil); vs != nil {
		t.Errorf("CheckConsistency(nil) = %v", vs)
	}
	if vs := CheckConsistency(&statsv1.StatEvent{}); vs != nil {
		t.Errorf("CheckConsistency(no batting) = %v", vs)
	}
}

func TestDerivedCounts(t *testing.T) {
	// 4 hits: a single, a double, a triple and a home run (the cycle): 1 + 2 + 3 + 4 bases.
	if got := Singles(4, 1, 1, 1); got != 1 {
		t.Errorf("Singles(cycle) = %d, want 1", got)
	}
	if got := TotalBases(4, 1, 1, 1); got != 10 {
		t.Errorf("TotalBases(cycle) = %d, want 10", got)
	}
	// Shawn Green, 2002-05-23: 6 hits, 1 double, 4 home runs, 19 total bases.
	if got := TotalBases(6, 1, 0, 4); got != 19 {
		t.Errorf("TotalBases(Green) = %d, want 19", got)
	}
}
