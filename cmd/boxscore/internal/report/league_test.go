package report

import (
	"bytes"
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/gamelog"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/leaguegen"
	"github.com/boxscore-dev/boxscore/pkg/pgmigrate"
	"github.com/boxscore-dev/boxscore/pkg/seasonview"
	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
)

// The league report against a generated league (leaguegen, fixed seed) loaded as the loader
// keeps it (the latest version of each line; dim_player with the team of each player's last
// game) into the loader's real PostgreSQL and Redshift schemas. The expected leaderboards
// are computed here from the generated rows alone: totals, rates rounded from exact
// fractions, each team's games from the rows' own team column, the 3.1 PA rule.

var (
	may1  = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	may31 = time.Date(2024, 5, 31, 0, 0, 0, 0, time.UTC)
)

// generated generates the 2024 season's [from, to] with seed 7, all 30 teams.
func generated(tb testing.TB, from, to time.Time) []gamelog.Row {
	tb.Helper()
	res, err := leaguegen.Generate(leaguegen.Options{Seed: 7, Season: 2024, From: from, To: to})
	if err != nil {
		tb.Fatalf("generate: %v", err)
	}
	if res.Corrections == 0 {
		tb.Fatalf("the generated month has no correction: the test would not see corrections win")
	}
	return res.Rows
}

// latest keeps the highest version of each (player, game), as the warehouse does.
func latest(rows []gamelog.Row) []gamelog.Row {
	type key struct {
		player int64
		game   string
	}
	byKey := map[key]gamelog.Row{}
	for _, r := range rows {
		k := key{r.PlayerID, r.GameID}
		if old, ok := byKey[k]; !ok || r.Version > old.Version {
			byKey[k] = r
		}
	}
	out := make([]gamelog.Row, 0, len(byKey))
	for _, r := range byKey {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b gamelog.Row) int {
		return cmp.Or(cmp.Compare(a.PlayerID, b.PlayerID), strings.Compare(a.GameID, b.GameID))
	})
	return out
}

// loadLeague migrates a fresh database with the loader's migrations of both engines
// (schemas pg and rs) and loads rows into both as the loader would keep them.
func loadLeague(tb testing.TB, rows []gamelog.Row) (string, *pgxpool.Pool) {
	tb.Helper()
	ctx := tb.Context()
	url := pgtest.NewDatabase(tb)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(pool.Close)
	if err := pgmigrate.Apply(ctx, pool, os.DirFS(filepath.Join(loaderMigrations, "sql")), "loader", "pg", nil); err != nil {
		tb.Fatalf("PostgreSQL migrations: %v", err)
	}
	if err := pgmigrate.ApplyRedshift(ctx, pool, os.DirFS(filepath.Join(loaderMigrations, "redshift")), "loader", "rs", nil,
		pgmigrate.RedshiftToPostgreSQL); err != nil {
		tb.Fatalf("Redshift migrations: %v", err)
	}
	lines := latest(rows)
	facts := make([][]any, len(lines))
	type lastGame struct {
		date       string
		number     int
		name, team string
	}
	players := map[int64]lastGame{}
	for i, r := range lines {
		date, err := time.Parse(time.DateOnly, r.GameDate)
		if err != nil {
			tb.Fatal(err)
		}
		singles := r.Hits - r.Doubles - r.Triples - r.HomeRuns
		tbases := singles + 2*r.Doubles + 3*r.Triples + 4*r.HomeRuns
		facts[i] = []any{r.PlayerID, r.GameID, date, int16(r.GameNumber), int16(r.Season), r.Opponent, r.Home,
			r.PlateAppearances, r.AtBats, r.Runs, r.Hits, singles, r.Doubles, r.Triples, r.HomeRuns, r.RBI,
			r.BaseOnBalls, r.IntentionalWalks, r.StrikeOuts, r.HitByPitch, r.SacBunts, r.SacFlies,
			r.StolenBases, r.CaughtStealing, r.GroundIntoDoublePlay, tbases, r.Doubles + r.Triples + r.HomeRuns,
			r.Hits + r.BaseOnBalls + r.HitByPitch, fmt.Sprintf("%d/%s/%d", r.PlayerID, r.GameID, r.Version), r.Version}
		if p, ok := players[r.PlayerID]; !ok || r.GameDate > p.date || (r.GameDate == p.date && r.GameNumber > p.number) {
			players[r.PlayerID] = lastGame{r.GameDate, r.GameNumber, r.PlayerName, r.Team}
		}
	}
	dims := make([][]any, 0, len(players))
	for id, p := range players {
		date, _ := time.Parse(time.DateOnly, p.date)
		dims = append(dims, []any{id, p.name, p.team, date, time.Now()})
	}
	factColumns := []string{"player_id", "game_id", "game_date", "game_number", "season", "opponent", "home",
		"plate_appearances", "at_bats", "runs", "hits", "singles", "doubles", "triples", "home_runs", "rbi",
		"base_on_balls", "intentional_walks", "strike_outs", "hit_by_pitch", "sac_bunts", "sac_flies",
		"stolen_bases", "caught_stealing", "ground_into_double_play", "total_bases", "extra_base_hits",
		"times_on_base", "event_id", "version"}
	for _, schema := range []string{"pg", "rs"} {
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{schema, "fact_batting_game"}, factColumns, pgx.CopyFromRows(facts)); err != nil {
			tb.Fatalf("load the lines into %s: %v", schema, err)
		}
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{schema, "dim_player"},
			[]string{"player_id", "name", "team", "last_game_date", "updated_at"}, pgx.CopyFromRows(dims)); err != nil {
			tb.Fatalf("load the players into %s: %v", schema, err)
		}
		if _, err := pool.Exec(ctx, "ANALYZE "+schema+".fact_batting_game; ANALYZE "+schema+".dim_player"); err != nil {
			tb.Fatal(err)
		}
	}
	return url, pool
}

// expectedBoard is the leaderboard computed from the rows alone: player ids in order.
func expectedBoard(rows []gamelog.Row, from, to time.Time, team, sortKey string, limit int) []int64 {
	type player struct {
		id                                                    int64
		name, team, lastDate                                  string
		lastNumber                                            int
		pa, ab, h, d2, d3, hr, rbi, bb, hbp, sf, sb, r, games int
	}
	inRange := func(date string) bool {
		return (from.IsZero() || date >= from.Format(time.DateOnly)) && (to.IsZero() || date <= to.Format(time.DateOnly))
	}
	players := map[int64]*player{}
	teamGames := map[string]map[string]bool{}
	for _, r := range latest(rows) {
		if r.Season != 2024 {
			continue
		}
		p := players[r.PlayerID]
		if p == nil {
			p = &player{id: r.PlayerID, name: r.PlayerName}
			players[r.PlayerID] = p
		}
		// The current team: the team of the player's last game, whatever the range.
		if r.GameDate > p.lastDate || (r.GameDate == p.lastDate && r.GameNumber > p.lastNumber) {
			p.team, p.lastDate, p.lastNumber = r.Team, r.GameDate, r.GameNumber
		}
		if !inRange(r.GameDate) {
			continue
		}
		if teamGames[r.Team] == nil {
			teamGames[r.Team] = map[string]bool{}
		}
		teamGames[r.Team][fmt.Sprintf("%s/%d", r.GameDate, r.GameNumber)] = true
		p.pa += r.PlateAppearances
		p.ab += r.AtBats
		p.h += r.Hits
		p.d2 += r.Doubles
		p.d3 += r.Triples
		p.hr += r.HomeRuns
		p.rbi += r.RBI
		p.bb += r.BaseOnBalls
		p.hbp += r.HitByPitch
		p.sf += r.SacFlies
		p.sb += r.StolenBases
		p.r += r.Runs
		p.games++ // in range
	}
	// rate rounds num/den to thousandths, halves up; -1 without a denominator.
	rate := func(num, den int64) int64 {
		if den == 0 {
			return -1
		}
		return (2000*num + den) / (2 * den)
	}
	value := func(p *player) int64 {
		tb := int64(p.h + p.d2 + 2*p.d3 + 3*p.hr)
		obpNum, obpDen := int64(p.h+p.bb+p.hbp), int64(p.ab+p.bb+p.hbp+p.sf)
		switch sortKey {
		case "ops":
			if p.ab == 0 || obpDen == 0 {
				return -1
			}
			return rate(obpNum*int64(p.ab)+tb*obpDen, obpDen*int64(p.ab))
		case "avg":
			return rate(int64(p.h), int64(p.ab))
		case "hr":
			return int64(p.hr)
		case "sb":
			return int64(p.sb)
		}
		panic("expectedBoard: no " + sortKey)
	}
	rated := sortKey == "ops" || sortKey == "avg"
	var board []*player
	for _, p := range players {
		if p.games == 0 || (team != "" && p.team != team) {
			continue
		}
		// 3.1 PA per team game, rounded to the nearest whole number, halves up.
		if rated && 10*p.pa < 10*((31*len(teamGames[p.team])+5)/10) {
			continue
		}
		board = append(board, p)
	}
	slices.SortFunc(board, func(a, b *player) int {
		return cmp.Or(cmp.Compare(value(b), value(a)), cmp.Compare(b.pa, a.pa), strings.Compare(a.name, b.name), cmp.Compare(a.id, b.id))
	})
	if limit > 0 && len(board) > limit {
		board = board[:limit]
	}
	ids := make([]int64, len(board))
	for i, p := range board {
		ids[i] = p.id
	}
	return ids
}

func TestLeagueLeaderboardsEqualAnIndependentComputation(t *testing.T) {
	t.Parallel()
	rows := generated(t, may1, may31)
	_, pool := loadLeague(t, rows)
	mid := time.Date(2024, 5, 15, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		from, to time.Time
		team     string
		sort     string
		limit    int
	}{
		{sort: "ops"},
		{sort: "avg", limit: 30},
		{sort: "hr", limit: 40},
		{sort: "sb"},
		{from: mid, sort: "ops"},
		{to: mid, sort: "avg"},
		{from: mid, to: mid.AddDate(0, 0, 6), team: "NYY", sort: "ops"},
		{team: "LAD", sort: "hr"},
	} {
		name := fmt.Sprintf("%s/%s..%s/%s/%d", tc.sort, tc.from.Format(time.DateOnly), tc.to.Format(time.DateOnly), tc.team, tc.limit)
		lines, err := seasonview.League(t.Context(), pool, "pg", seasonview.LeagueFilter{Season: 2024, From: tc.from, To: tc.to, Team: tc.team})
		if err != nil {
			t.Fatalf("%s: League: %v", name, err)
		}
		board, err := Rank(lines, Ranking{Sort: tc.sort, MinPA: -1, Limit: tc.limit})
		if err != nil {
			t.Fatalf("%s: Rank: %v", name, err)
		}
		if len(board.EstimatedTeams) != 0 {
			t.Errorf("%s: team games estimated for %v, though the warehouse holds the league", name, board.EstimatedTeams)
		}
		got := make([]int64, len(board.Rows))
		for i, r := range board.Rows {
			got[i] = r.ID
		}
		want := expectedBoard(rows, tc.from, tc.to, tc.team, tc.sort, tc.limit)
		if len(want) < 5 {
			t.Fatalf("%s: only %d players expected: the case tests too little", name, len(want))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: leaderboard %v\nwant %v", name, got, want)
		}
		if rated := sortKeys[tc.sort].rate; rated && board.Qualified >= board.Players {
			t.Errorf("%s: every one of %d players qualified: the rule kept nobody out", name, board.Players)
		}
	}
}

func TestLeagueTotalsEqualTheGeneratorsTotals(t *testing.T) {
	t.Parallel()
	res, err := leaguegen.Generate(leaguegen.Options{Seed: 7, Season: 2024, From: may1, To: may31})
	if err != nil {
		t.Fatal(err)
	}
	_, pool := loadLeague(t, res.Rows)
	lines, err := seasonview.League(t.Context(), pool, "pg", seasonview.LeagueFilter{Season: 2024})
	if err != nil {
		t.Fatal(err)
	}
	var got leaguegen.Totals
	for _, l := range lines {
		got.Lines += l.Games
		got.PlateAppearances += l.PlateAppearances
		got.AtBats += l.AtBats
		got.Runs += l.Runs
		got.Hits += l.Hits
		got.Doubles += l.Doubles
		got.Triples += l.Triples
		got.HomeRuns += l.HomeRuns
		got.RBI += l.RBI
		got.BaseOnBalls += l.BaseOnBalls
		got.IntentionalWalks += l.IntentionalWalks
		got.StrikeOuts += l.StrikeOuts
		got.HitByPitch += l.HitByPitch
		got.SacBunts += l.SacBunts
		got.SacFlies += l.SacFlies
		got.StolenBases += l.StolenBases
		got.CaughtStealing += l.CaughtStealing
		got.GroundIntoDoublePlay += l.GroundIntoDoublePlay
	}
	if got != res.Totals {
		t.Errorf("league totals from the report's query:\n%+v\nthe generator's (play by play, corrections applied):\n%+v", got, res.Totals)
	}
}

func TestLeagueReportOnRedshiftPrintsWhatPostgreSQLPrints(t *testing.T) {
	t.Parallel()
	rows := generated(t, may1, may31)
	url, _ := loadLeague(t, rows)
	minPA := 60
	for _, flags := range []Command{
		{Sort: "ops", Limit: 10},
		{Sort: "hr", Team: "LAD", From: "2024-05-10", To: "2024-05-24", Players: []int64{rows[0].PlayerID}},
		{Sort: "avg", MinPA: &minPA, Limit: 0},
	} {
		pgCmd, rsCmd := flags, flags
		pgCmd.DatabaseURL, pgCmd.Schema, pgCmd.Engine = url, "pg", enginePostgreSQL
		onRedshift := &recorder{}
		rsCmd.DatabaseURL, rsCmd.Schema, rsCmd.Engine, rsCmd.tracer = url, "rs", engineRedshift, onRedshift
		pgOut, pgChart := runReport(t, pgCmd)
		rsOut, rsChart := runReport(t, rsCmd)
		if rsOut != pgOut {
			t.Errorf("--sort %s: report on the Redshift schema:\n%s\nwant what the PostgreSQL one printed:\n%s", flags.Sort, rsOut, pgOut)
		}
		if !bytes.Equal(rsChart, pgChart) {
			t.Errorf("--sort %s: the chart drawn from the Redshift schema differs from the PostgreSQL one", flags.Sort)
		}
		onRedshift.assertRedshiftSafe(t)
		if !strings.Contains(pgOut, "By "+sortKeys[flags.Sort].label+", ") {
			t.Errorf("--sort %s: the heading does not say the order:\n%s", flags.Sort, pgOut)
		}
	}
}

// BenchmarkLeagueSeasonReport measures the report's league query (League + Rank) on a
// whole generated season (~57,000 lines, ~600 batters) in PostgreSQL, with the loader's
// indexes. It asserts nothing about time.
func BenchmarkLeagueSeasonReport(b *testing.B) {
	rows := generated(b, time.Time{}, time.Time{})
	_, pool := loadLeague(b, rows)
	b.ResetTimer()
	for b.Loop() {
		lines, err := seasonview.League(b.Context(), pool, "pg", seasonview.LeagueFilter{Season: 2024})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Rank(lines, Ranking{Sort: "ops", MinPA: -1, Limit: 25}); err != nil {
			b.Fatal(err)
		}
	}
}
