package gamelog_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/gamelog"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

func readAll(t *testing.T, r io.Reader) ([]gamelog.Row, []*gamelog.RowError) {
	t.Helper()
	rd, err := gamelog.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	var rows []gamelog.Row
	var bad []*gamelog.RowError
	for {
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return rows, bad
		}
		var rowErr *gamelog.RowError
		if errors.As(err, &rowErr) {
			bad = append(bad, rowErr)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row)
	}
}

func TestReadsTheDemoSeason(t *testing.T) {
	f, err := os.Open("../../../../k8s/local/demo/dodgers-2024-mar-jun.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, bad := readAll(t, f)
	if len(bad) != 0 || len(rows) != 235 {
		t.Fatalf("rows = %d, malformed = %v; want 235 and none", len(rows), bad)
	}
	first := rows[0]
	if first.GameDate != "2024-03-20" || first.GameID != "SDN202403200" || first.PlayerID != 518692 ||
		first.PlayerName != "Freddie Freeman" || first.Home || first.PlateAppearances != 5 || first.AtBats != 4 ||
		first.Runs != 3 || first.Hits != 2 || first.BaseOnBalls != 1 || first.StrikeOuts != 1 ||
		first.GroundIntoDoublePlay != 1 || first.TotalBases == nil || *first.TotalBases != 2 || first.Version != 1 {
		t.Fatalf("first row = %+v", first)
	}
	for _, r := range rows {
		ev := r.Event("test")
		if v := append(statevent.ValidateShape(ev), statevent.CheckConsistency(ev)...); len(v) > 0 {
			t.Errorf("%s %s: %v", r.PlayerName, r.GameID, v)
		}
	}
}

func TestMalformedRowsNameLineAndColumnAndDoNotStopTheRest(t *testing.T) {
	input := strings.Join([]string{
		strings.Join(gamelog.Header, ","),
		"2024,2024-03-20,SDN202403200,0,518692,Freddie Freeman,LAD,SD,away,5,4,3,2,0,0,0,0,1,0,1,0,0,0,0,0,1,2",
		"2024,2024-03-21,LAN202403210,0,605141,Mookie Betts,LAD,SD,home,4,four,0,1,1,0,0,1,0,0,0,0,0,0,0,0,0,2",
		"2024,2024-02-30,LAN202403210,0,660271,Shohei Ohtani,LAD,SD,home,4,4,0,1,1,0,0,1,0,0,0,0,0,0,0,0,0,2",
		"2024,2024-03-21,LAN202403210,0,660271,Shohei Ohtani,LAD,SD,home,4,4",
		"2024,2024-03-21,LAN202403210,0,660271,Shohei Ohtani,LAD,SD,sideways,4,4,0,1,1,0,0,1,0,0,0,0,0,0,0,0,0,2",
		"2024,2024-03-22,LAN202403220,0,660271,Shohei Ohtani,LAD,SD,home,4,4,0,1,1,0,0,1,0,0,0,0,0,0,0,0,0,",
	}, "\n") + "\n"
	rows, bad := readAll(t, strings.NewReader(input))
	if len(rows) != 2 {
		t.Fatalf("valid rows = %d, want 2 (first and last)", len(rows))
	}
	if rows[1].TotalBases != nil {
		t.Errorf("empty total_bases read as %v, want absent", *rows[1].TotalBases)
	}
	want := []struct {
		line   int
		column string
	}{{3, "at_bats"}, {4, "game_date"}, {5, "runs"}, {6, "home_away"}}
	if len(bad) != len(want) {
		t.Fatalf("malformed = %v, want %d", bad, len(want))
	}
	for i, w := range want {
		if bad[i].Line != w.line || bad[i].Column != w.column {
			t.Errorf("error %d = %q, want line %d column %s", i, bad[i], w.line, w.column)
		}
		if !strings.Contains(bad[i].Error(), "line ") || !strings.Contains(bad[i].Error(), w.column) {
			t.Errorf("message %q does not name line and column", bad[i])
		}
	}
}

func TestMissingColumnsAreNamed(t *testing.T) {
	_, err := gamelog.NewReader(strings.NewReader("season,game_date,player_id\n"))
	if err == nil || !strings.Contains(err.Error(), "game_id") || !strings.Contains(err.Error(), "at_bats") {
		t.Fatalf("err = %v, want the missing columns named", err)
	}
	if _, err := gamelog.NewReader(strings.NewReader("")); err == nil {
		t.Fatal("empty file accepted")
	}
}

func TestWriteThenReadRoundTrips(t *testing.T) {
	tb := 7
	in := []gamelog.Row{
		{Season: 2024, GameDate: "2024-05-01", GameID: "LAN202405011", GameNumber: 1, PlayerID: 660271, PlayerName: "Shohei Ohtani",
			Team: "LAD", Opponent: "ATL", Home: true, Version: 1, PlateAppearances: 5, AtBats: 4, Hits: 2, HomeRuns: 1, Doubles: 1,
			RBI: 3, Runs: 1, BaseOnBalls: 1, TotalBases: &tb},
		{Season: 2024, GameDate: "2024-05-01", GameID: "LAN202405012", GameNumber: 2, PlayerID: 660271, PlayerName: "Shohei Ohtani, Jr.",
			Team: "LAD", Opponent: "ATL", Version: 1, PlateAppearances: 4, AtBats: 4},
	}
	var buf bytes.Buffer
	w := gamelog.NewWriter(&buf)
	for _, r := range in {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	out, bad := readAll(t, &buf)
	if len(bad) != 0 || len(out) != len(in) {
		t.Fatalf("read back %d rows, %v", len(out), bad)
	}
	for i := range in {
		if out[i].TotalBases != nil && in[i].TotalBases != nil && *out[i].TotalBases != *in[i].TotalBases {
			t.Errorf("row %d total bases differ", i)
		}
		a, b := in[i], out[i]
		a.TotalBases, b.TotalBases = nil, nil
		if a != b {
			t.Errorf("row %d:\n got %+v\nwant %+v", i, b, a)
		}
	}
}

func TestEventIDsAreDeterministicPerPlayerGameAndVersion(t *testing.T) {
	r := gamelog.Row{Season: 2024, GameDate: "2024-03-20", GameID: "SDN202403200", PlayerID: 660271, PlayerName: "Shohei Ohtani",
		Team: "LAD", Opponent: "SD", Version: 1, PlateAppearances: 5, AtBats: 5}
	a, b := r.Event("x"), r.Event("y")
	if a.GetEventId() != b.GetEventId() || a.GetEventId() != "867ace91-eb65-5f10-9407-820028e57b24" {
		t.Fatalf("ids %q and %q, want the fixed id of (660271, SDN202403200, 1)", a.GetEventId(), b.GetEventId())
	}
	r.Version = 2
	if r.Event("x").GetEventId() == a.GetEventId() {
		t.Fatal("a correction got the id of the line it corrects")
	}
	if a.GetBatting().TotalBases != nil {
		t.Fatal("total bases invented for a row without it")
	}
}
