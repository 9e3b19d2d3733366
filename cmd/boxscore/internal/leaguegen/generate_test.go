package leaguegen_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/gamelog"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/leaguegen"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// fullSeason is the 2024 season of seed 1, generated once for the tests that only read it.
var fullSeason = sync.OnceValues(func() (*leaguegen.Result, error) {
	return leaguegen.Generate(leaguegen.Options{Seed: 1, Season: 2024})
})

func season(t *testing.T) *leaguegen.Result {
	t.Helper()
	res, err := fullSeason()
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func csvOf(t *testing.T, rows []gamelog.Row) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := leaguegen.WriteCSV(&buf, rows); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readBack(t *testing.T, data []byte) []gamelog.Row {
	t.Helper()
	rd, err := gamelog.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var rows []gamelog.Row
	for {
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return rows
		}
		if err != nil {
			t.Fatalf("gamelog reader: %v", err)
		}
		rows = append(rows, row)
	}
}

func date(s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return d
}

func TestSameSeedSameBytes(t *testing.T) {
	opts := leaguegen.Options{Seed: 42, Season: 2025, From: date("2025-06-01"), To: date("2025-06-30")}
	a, err := leaguegen.Generate(opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := leaguegen.Generate(opts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(csvOf(t, a.Rows), csvOf(t, b.Rows)) {
		t.Fatal("two runs with the same seed and options wrote different files")
	}
	opts.Seed = 43
	c, err := leaguegen.Generate(opts)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(csvOf(t, a.Rows), csvOf(t, c.Rows)) {
		t.Fatal("seeds 42 and 43 wrote the same file")
	}
	// 2025: the Athletics are ATH.
	if !slices.ContainsFunc(a.Rows, func(r gamelog.Row) bool { return r.Team == "ATH" }) {
		t.Error("no ATH line in 2025")
	}
}

func TestScheduleShape(t *testing.T) {
	res := season(t)
	if len(res.Games) != 2430 {
		t.Fatalf("%d games, want 2430 (30 teams x 162 / 2)", len(res.Games))
	}
	var played, home [30]int
	ids := map[string]bool{}
	type teamDay struct {
		team int
		day  time.Time
	}
	onDay := map[teamDay][]leaguegen.Game{}
	pairGames := map[[2]int]int{}
	doubleheaders := 0
	for _, g := range res.Games {
		if ids[g.ID] {
			t.Fatalf("game id %s twice", g.ID)
		}
		ids[g.ID] = true
		played[g.Home]++
		played[g.Away]++
		home[g.Home]++
		pairGames[[2]int{min(g.Home, g.Away), max(g.Home, g.Away)}]++
		for _, team := range []int{g.Home, g.Away} {
			onDay[teamDay{team, g.Date}] = append(onDay[teamDay{team, g.Date}], g)
		}
		if g.Number == 2 {
			doubleheaders++
		}
		if suffix := fmt.Sprint(g.Number); !strings.HasSuffix(g.ID, suffix) || (g.Number == 1) != g.Postponed.Equal(g.Date.AddDate(0, 0, -1)) {
			t.Errorf("game %s (number %d, postponed from %s): the id ends with the game number, game 1 makes up yesterday's game", g.ID, g.Number, g.Postponed)
		}
		if g.Date.Before(date("2024-03-26")) || g.Date.After(date("2024-10-06")) {
			t.Errorf("game %s on %s: outside late March to early October", g.ID, g.Date.Format(time.DateOnly))
		}
		if !g.Date.Before(date("2024-07-15")) && !g.Date.After(date("2024-07-18")) {
			t.Errorf("game %s during the All-Star break", g.ID)
		}
	}
	for team := range played {
		if played[team] != 162 || home[team] != 81 {
			t.Errorf("%s: %d games, %d at home; want 162 and 81", res.Teams[team].Code, played[team], home[team])
		}
	}
	for k, gs := range onDay {
		switch {
		case len(gs) == 1 && gs[0].Number == 0:
		case len(gs) == 2 && gs[0].Number+gs[1].Number == 3 && gs[0].Home == gs[1].Home && gs[0].Away == gs[1].Away:
		default:
			t.Errorf("%s on %s plays %d games at once: %+v", res.Teams[k.team].Code, k.day.Format(time.DateOnly), len(gs), gs)
		}
	}
	if doubleheaders < 3 || doubleheaders > 40 {
		t.Errorf("%d doubleheaders, want a few (3-40)", doubleheaders)
	}
	// Games per pair follow the balanced schedule: 13 in a division, 6-7 in a league, 3-4 across.
	for pair, n := range pairGames {
		a, b := res.Teams[pair[0]], res.Teams[pair[1]]
		var ok bool
		switch {
		case a.League == b.League && a.Division == b.Division:
			ok = n == 13
		case a.League == b.League:
			ok = n == 6 || n == 7
		default:
			ok = n == 3 || n == 4
		}
		if !ok {
			t.Errorf("%s-%s: %d games", a.Code, b.Code, n)
		}
	}
	// Series: consecutive game days of one team against one opponent at one park hold 2-4 games.
	for team := range 30 {
		var mine []leaguegen.Game
		for _, g := range res.Games {
			if g.Home == team || g.Away == team {
				mine = append(mine, g)
			}
		}
		offDays := int(mine[len(mine)-1].Date.Sub(mine[0].Date).Hours()/24) + 1
		for i := 0; i < len(mine); {
			j := i
			for j+1 < len(mine) && mine[j+1].Home == mine[i].Home && mine[j+1].Away == mine[i].Away {
				j++
			}
			if n := j - i + 1; n < 2 || n > 4 {
				t.Errorf("%s: a series of %d games from %s", res.Teams[team].Code, n, mine[i].ID)
			}
			i = j + 1
		}
		days := map[time.Time]bool{}
		for _, g := range mine {
			days[g.Date] = true
		}
		if offDays -= len(days); offDays < 10 {
			t.Errorf("%s: %d off days", res.Teams[team].Code, offDays)
		}
	}
}

func TestEveryLineIsConsistent(t *testing.T) {
	res := season(t)
	pitchers := map[int64]bool{}
	for _, p := range res.Players {
		if p.Pitcher {
			pitchers[p.ID] = true
		}
	}
	pitcherLines := 0
	for i, r := range res.Rows {
		ev := r.Event("leaguegen")
		statevent.Normalize(ev)
		if vs := append(statevent.ValidateShape(ev), statevent.CheckConsistency(ev)...); len(vs) > 0 {
			t.Fatalf("row %d (%s %s v%d): %v", i+1, r.PlayerName, r.GameID, r.Version, vs)
		}
		if ab := r.PlateAppearances - r.BaseOnBalls - r.HitByPitch - r.SacFlies - r.SacBunts; r.AtBats != ab {
			t.Fatalf("row %d: AB %d, PA - BB - HBP - SF - SH = %d", i+1, r.AtBats, ab)
		}
		if r.Hits < r.Doubles+r.Triples+r.HomeRuns || r.TotalBases == nil ||
			*r.TotalBases != r.Hits+r.Doubles+2*r.Triples+3*r.HomeRuns || r.Runs > r.PlateAppearances+1 {
			t.Fatalf("row %d: inconsistent %+v", i+1, r)
		}
		if pitchers[r.PlayerID] {
			pitcherLines++
		}
	}
	if pitcherLines == 0 || pitcherLines > len(res.Rows)/200 {
		t.Errorf("%d lines of pitchers in %d: want a rare few", pitcherLines, len(res.Rows))
	}
	t.Logf("%d lines, %d of pitchers", len(res.Rows), pitcherLines)
}

func TestLeagueAggregatesAreRealistic(t *testing.T) {
	res := season(t)
	tot := leaguegen.TotalsOf(res.Rows)
	teamGames := float64(2 * len(res.Games))
	checks := []struct {
		name     string
		got      float64
		low, top float64
	}{
		{"AVG", tot.AVG(), 0.235, 0.258},
		{"OBP", tot.OBP(), 0.305, 0.330},
		{"SLG", tot.SLG(), 0.385, 0.425},
		{"runs per team game", float64(tot.Runs) / teamGames, 3.9, 4.8},
		{"PA per team game", float64(tot.PlateAppearances) / teamGames, 36.5, 39.5},
		{"HR per team game", float64(tot.HomeRuns) / teamGames, 0.9, 1.35},
		{"lines", float64(tot.Lines), 52_000, 64_000},
		{"players on a roster", float64(res.RosteredPlayers), 1_050, 1_300},
		{"players with lines", float64(res.PlayersWithLines()), 450, 800},
	}
	for _, c := range checks {
		if c.got < c.low || c.got > c.top {
			t.Errorf("%s = %.3f, want %.3f-%.3f", c.name, c.got, c.low, c.top)
		}
	}
	t.Logf("%.3f/%.3f/%.3f, %d lines, %d players rostered", tot.AVG(), tot.OBP(), tot.SLG(), tot.Lines, res.RosteredPlayers)

	// A lineup slot comes up about 4.2 times a game; a team uses 10-13 players a game, the
	// bench players with few plate appearances.
	type teamGame struct {
		game string
		team string
	}
	lines := map[teamGame]int{}
	short := 0
	for _, r := range res.Rows {
		if r.Version == 1 {
			lines[teamGame{r.GameID, r.Team}]++
			if r.PlateAppearances <= 1 {
				short++
			}
		}
	}
	if perSlot := float64(tot.PlateAppearances) / teamGames / 9; perSlot < 4.0 || perSlot > 4.4 {
		t.Errorf("%.2f PA per lineup slot and game, want about 4.2", perSlot)
	}
	if perGame := float64(tot.Lines) / float64(len(lines)); perGame < 10.5 || perGame > 13 {
		t.Errorf("%.2f lines per team game, want 10.5-13", perGame)
	}
	for k, n := range lines {
		if n < 9 || n > 14 {
			t.Fatalf("%s %s: %d lines (9 starters and at most 4 bench players and a pitcher)", k.game, k.team, n)
		}
	}
	if share := float64(short) / float64(tot.Lines); share < 0.08 || share > 0.3 {
		t.Errorf("%.3f of the lines have at most one plate appearance, want 0.08-0.3", share)
	}
}

func TestRostersAndTrades(t *testing.T) {
	res := season(t)
	trades := map[int64][]leaguegen.Transaction{}
	nTrades := 0
	for _, tr := range res.Transactions {
		if tr.Kind == "trade" {
			trades[tr.PlayerID] = append(trades[tr.PlayerID], tr)
			nTrades++
		}
	}
	if nTrades < 10 {
		t.Fatalf("%d players traded, want a few mid-season trades", nTrades)
	}
	type appearance struct {
		date time.Time
		team string
	}
	byPlayer := map[int64][]appearance{}
	playerGame := map[string]bool{}
	for _, r := range res.Rows {
		if r.Version != 1 {
			continue
		}
		k := fmt.Sprint(r.PlayerID, r.GameID)
		if playerGame[k] {
			t.Fatalf("player %d twice in game %s", r.PlayerID, r.GameID)
		}
		playerGame[k] = true
		byPlayer[r.PlayerID] = append(byPlayer[r.PlayerID], appearance{date(r.GameDate), r.Team})
	}
	movedAndPlayedForBoth := 0
	for id, apps := range byPlayer {
		for i := 1; i < len(apps); i++ {
			prev, cur := apps[i-1], apps[i]
			if cur.date.Before(prev.date) {
				t.Fatalf("player %d: rows out of date order", id)
			}
			if cur.team == prev.team {
				continue
			}
			if cur.date.Equal(prev.date) {
				t.Fatalf("player %d plays for %s and %s on %s", id, prev.team, cur.team, cur.date.Format(time.DateOnly))
			}
			ok := slices.ContainsFunc(trades[id], func(tr leaguegen.Transaction) bool {
				return res.Teams[tr.From].Code == prev.team && res.Teams[tr.To].Code == cur.team &&
					tr.Date.After(prev.date) && !tr.Date.After(cur.date)
			})
			if !ok {
				t.Fatalf("player %d moves from %s to %s between %s and %s without a trade", id, prev.team, cur.team,
					prev.date.Format(time.DateOnly), cur.date.Format(time.DateOnly))
			}
			movedAndPlayedForBoth++
		}
	}
	if movedAndPlayedForBoth == 0 {
		t.Error("no traded player has lines for two teams")
	}
	injuries := 0
	for _, tr := range res.Transactions {
		if tr.Kind == "injured" {
			injuries++
		}
	}
	if injuries < 100 {
		t.Errorf("%d injuries: the call-ups need some", injuries)
	}
}

func TestCorrections(t *testing.T) {
	res := season(t)
	if res.Corrections < 100 || res.Corrections > 400 {
		t.Fatalf("%d corrections, want a small share of ~57k lines (100-400)", res.Corrections)
	}
	type key struct {
		player int64
		game   string
	}
	originals := map[key]int{}    // row index
	lastOfDay := map[string]int{} // index of the last version-1 row of each game date
	for i, r := range res.Rows {
		if r.Version == 1 {
			lastOfDay[r.GameDate] = i
		}
	}
	corrections := 0
	for i, r := range res.Rows {
		k := key{r.PlayerID, r.GameID}
		switch r.Version {
		case 1:
			if _, dup := originals[k]; dup {
				t.Fatalf("row %d: a second version 1 of %v", i+1, k)
			}
			originals[k] = i
		case 2:
			corrections++
			j, ok := originals[k]
			if !ok {
				t.Fatalf("row %d: correction of %v before (or without) its line", i+1, k)
			}
			if j < 0 {
				t.Fatalf("row %d: %v corrected twice", i+1, k)
			}
			o := res.Rows[j]
			if o.GameDate != r.GameDate || o.Team != r.Team || o.Opponent != r.Opponent || o.Home != r.Home || o.GameNumber != r.GameNumber {
				t.Fatalf("row %d: correction changes the game: %+v vs %+v", i+1, r, o)
			}
			if i < lastOfDay[r.GameDate] {
				// A correction is found at least a day after its game: after every line of that day.
				t.Fatalf("row %d: correction of a %s game among that day's lines", i+1, r.GameDate)
			}
			diff := 0
			for _, d := range []int{r.Hits - o.Hits, r.Doubles - o.Doubles, r.RBI - o.RBI, r.AtBats - o.AtBats, r.PlateAppearances - o.PlateAppearances} {
				if d != 0 {
					diff++
				}
			}
			if diff != 1 || o.Runs != r.Runs || o.AtBats != r.AtBats {
				t.Fatalf("row %d: a scoring change alters exactly one of hits, doubles, RBI: %+v -> %+v", i+1, o, r)
			}
			originals[k] = -1 // a line is corrected at most once
		default:
			t.Fatalf("row %d: version %d", i+1, r.Version)
		}
	}
	if corrections != res.Corrections {
		t.Fatalf("%d version-2 rows, Result.Corrections %d", corrections, res.Corrections)
	}
}

func TestCSVReadsBackAndTotalsMatch(t *testing.T) {
	res := season(t)
	data := csvOf(t, res.Rows)
	rows := readBack(t, data)
	if len(rows) != len(res.Rows) {
		t.Fatalf("read %d rows, wrote %d", len(rows), len(res.Rows))
	}
	if !bytes.Equal(csvOf(t, rows), data) {
		t.Fatal("rows read back write a different file")
	}
	v2 := 0
	for _, r := range rows {
		if r.Version == 2 {
			v2++
		}
	}
	if v2 != res.Corrections {
		t.Fatalf("the reader sees %d version-2 rows, want %d", v2, res.Corrections)
	}
	// The totals counted play by play equal a recomputation from the file.
	if got := leaguegen.TotalsOf(rows); got != res.Totals {
		t.Fatalf("totals from the CSV %+v\n differ from the generator's %+v", got, res.Totals)
	}
	// Per player, the same totals.
	var sum leaguegen.Totals
	for _, pt := range leaguegen.PlayerTotalsOf(rows) {
		sum.Lines += pt.Lines
		sum.Hits += pt.Hits
		sum.RBI += pt.RBI
		sum.PlateAppearances += pt.PlateAppearances
	}
	if want := res.Totals; sum.Lines != want.Lines || sum.Hits != want.Hits || sum.RBI != want.RBI || sum.PlateAppearances != want.PlateAppearances {
		t.Fatalf("players' totals add up to %+v, league %+v", sum, want)
	}
	// And the file's totals are not those of version 1 alone: the corrections count.
	var firsts []gamelog.Row
	for _, r := range rows {
		if r.Version == 1 {
			firsts = append(firsts, r)
		}
	}
	if leaguegen.TotalsOf(firsts) == res.Totals {
		t.Fatal("corrections change nothing in the totals")
	}
}

func TestWindowAndTeamsAreTheMatchingPartOfTheSeason(t *testing.T) {
	full := season(t)
	opts := leaguegen.Options{Seed: 1, Season: 2024, From: date("2024-05-01"), To: date("2024-05-31"), Teams: []string{"LAD", "SD"}}
	part, err := leaguegen.Generate(opts)
	if err != nil {
		t.Fatal(err)
	}
	var want []gamelog.Row
	for _, r := range full.Rows {
		if r.Version == 1 && (r.Team == "LAD" || r.Team == "SD") && r.GameDate >= "2024-05-01" && r.GameDate <= "2024-05-31" {
			want = append(want, r)
		}
	}
	var got []gamelog.Row
	for _, r := range part.Rows {
		if r.Version == 1 {
			got = append(got, r)
		}
	}
	if !bytes.Equal(csvOf(t, got), csvOf(t, want)) || len(got) < 500 {
		t.Fatalf("the window holds %d lines, the full season %d for it", len(got), len(want))
	}
	for _, g := range part.Games {
		if g.Date.Month() != time.May {
			t.Fatalf("game %s outside the window", g.ID)
		}
	}
	if tot := leaguegen.TotalsOf(readBack(t, csvOf(t, part.Rows))); tot != part.Totals {
		t.Fatalf("window totals: CSV %+v, generator %+v", tot, part.Totals)
	}
}

func TestOptionsAreValidated(t *testing.T) {
	for _, opts := range []leaguegen.Options{
		{Season: 2019},
		{Teams: []string{"LAD", "XYZ"}},
		{From: date("2024-06-01"), To: date("2024-05-01")},
	} {
		if _, err := leaguegen.Generate(opts); err == nil {
			t.Errorf("options %+v accepted", opts)
		}
	}
}

func BenchmarkGenerateSeason(b *testing.B) {
	for b.Loop() {
		res, err := leaguegen.Generate(leaguegen.Options{Seed: 1, Season: 2024})
		if err != nil {
			b.Fatal(err)
		}
		if err := leaguegen.WriteCSV(io.Discard, res.Rows); err != nil {
			b.Fatal(err)
		}
	}
}
