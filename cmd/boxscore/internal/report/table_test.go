package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/boxscore-dev/boxscore/pkg/seasonview"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// tableRows is a small fixed leaderboard, deliberately not in OPS order: a
// player over 1.000, ties on OPS broken by PA, a name with accents, and a
// pinch runner without a plate appearance (no rates at all).
func tableRows() []PlayerSeason {
	return []PlayerSeason{
		{Player: Player{ID: 3, Name: "Mookie Betts"}, Games: 71, PlateAppearances: 310, AtBats: 271, Runs: 42, Hits: 71, Doubles: 11, Triples: 3, HomeRuns: 6, RBI: 40, BaseOnBalls: 38, StrikeOuts: 39, StolenBases: 8,
			AVG: Rate{Thousandths: 262, Valid: true}, OBP: Rate{Thousandths: 352, Valid: true}, SLG: Rate{Thousandths: 391, Valid: true}, OPS: Rate{Thousandths: 743, Valid: true}},
		{Player: Player{ID: 4, Name: "Pinch Runner"}, Games: 2, StolenBases: 1},
		{Player: Player{ID: 1, Name: "Shohei Ohtani"}, Games: 83, PlateAppearances: 386, AtBats: 332, Runs: 79, Hits: 103, Doubles: 13, Triples: 5, HomeRuns: 28, RBI: 70, BaseOnBalls: 51, StrikeOuts: 72, StolenBases: 32,
			AVG: Rate{Thousandths: 310, Valid: true}, OBP: Rate{Thousandths: 404, Valid: true}, SLG: Rate{Thousandths: 633, Valid: true}, OPS: Rate{Thousandths: 1037, Valid: true}},
		{Player: Player{ID: 5, Name: "José Ramírez"}, Games: 9, PlateAppearances: 40, AtBats: 36, Runs: 5, Hits: 9, Doubles: 2, HomeRuns: 1, RBI: 6, BaseOnBalls: 4, StrikeOuts: 5, StolenBases: 1,
			AVG: Rate{Thousandths: 250, Valid: true}, OBP: Rate{Thousandths: 325, Valid: true}, SLG: Rate{Thousandths: 418, Valid: true}, OPS: Rate{Thousandths: 743, Valid: true}},
		{Player: Player{ID: 2, Name: "Freddie Freeman"}, Games: 81, PlateAppearances: 349, AtBats: 307, Runs: 51, Hits: 98, Doubles: 15, Triples: 2, HomeRuns: 12, RBI: 52, BaseOnBalls: 31, StrikeOuts: 63, StolenBases: 4,
			AVG: Rate{Thousandths: 319, Valid: true}, OBP: Rate{Thousandths: 387, Valid: true}, SLG: Rate{Thousandths: 498, Valid: true}, OPS: Rate{Thousandths: 885, Valid: true}},
	}
}

func TestWriteTableGolden(t *testing.T) {
	rows := tableRows()
	before := slices.Clone(rows)

	var got bytes.Buffer
	if err := WriteTable(&got, rows); err != nil {
		t.Fatalf("WriteTable: %v", err)
	}
	golden := filepath.Join("testdata", "leaderboard.golden")
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatalf("update golden: %v", err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("WriteTable output differs from %s:\n--- got ---\n%s\n--- want ---\n%s", golden, got.Bytes(), want)
	}
	if !slices.Equal(rows, before) {
		t.Errorf("WriteTable reordered its input")
	}
}

func TestWriteTableReportsWriteErrors(t *testing.T) {
	if err := WriteTable(failingWriter{}, tableRows()); err == nil {
		t.Fatal("WriteTable to a failing writer succeeded, want an error")
	}
}

func TestRateString(t *testing.T) {
	for _, tc := range []struct {
		rate Rate
		want string
	}{
		{Rate{Thousandths: 312, Valid: true}, ".312"},
		{Rate{Thousandths: 5, Valid: true}, ".005"},
		{Rate{Thousandths: 0, Valid: true}, ".000"},
		{Rate{Thousandths: 1000, Valid: true}, "1.000"},
		{Rate{Thousandths: 1021, Valid: true}, "1.021"},
		{Rate{Thousandths: 4000, Valid: true}, "4.000"},
		{Rate{Thousandths: 0}, ".---"},
		{Rate{Thousandths: 312}, ".---"},
	} {
		if got := tc.rate.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.rate, got, tc.want)
		}
	}
}

// TestWriteLeaderboardGolden: the league table keeps the rows' order, ranks them (a tie on
// the statistic shares the rank: Betts and Ramírez both .743) and shows each team.
func TestWriteLeaderboardGolden(t *testing.T) {
	rows := tableRows()
	seasonview.SortByOPS(rows)
	rows[0].Team, rows[1].Team = "LAD", "LAD"
	rows[3].Team = "CLE"
	var got bytes.Buffer
	if err := WriteLeaderboard(&got, rows, "ops"); err != nil {
		t.Fatalf("WriteLeaderboard: %v", err)
	}
	golden := filepath.Join("testdata", "league.golden")
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatalf("update golden: %v", err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("WriteLeaderboard output differs from %s:\n--- got ---\n%s\n--- want ---\n%s", golden, got.Bytes(), want)
	}
	if err := WriteLeaderboard(&got, rows, "war"); err == nil {
		t.Errorf("WriteLeaderboard by an unknown statistic succeeded")
	}
}

func TestQualifyingPA(t *testing.T) {
	for games, want := range map[int]int{0: 0, 1: 3, 5: 16, 10: 31, 27: 84, 162: 502} {
		if got := QualifyingPA(games); got != want {
			t.Errorf("QualifyingPA(%d) = %d, want %d", games, got, want)
		}
	}
}
