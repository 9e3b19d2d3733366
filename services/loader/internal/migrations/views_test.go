package migrations_test

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/boxscore-dev/boxscore/pkg/seasonview"
	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations"
)

// The season views are checked against the demo season (k8s/local/demo/README.md):
// every expected number below is computed here, from the CSV, with the
// official formulas, never by the views or by package seasonview.

const demoCSV = "../../../../k8s/local/demo/dodgers-2024-mar-jun.csv"

// gameLine is one row of the demo CSV.
type gameLine struct {
	season                                                    int
	date                                                      time.Time
	gameID                                                    string
	gameNumber                                                int
	playerID                                                  int64
	name, team, opponent                                      string
	home                                                      bool
	pa, ab, r, h, doubles, triples, hr, rbi, bb, ibb, so, hbp int64
	sh, sf, sb, cs, gidp, tb                                  int64
}

// line is a sum of batting lines, from which the rates are computed.
type line struct {
	games                                                                 int64
	pa, ab, r, h, doubles, triples, hr, rbi, bb, ibb, so, hbp, sh, sf, sb int64
	cs, gidp, tb                                                          int64
}

func (l *line) add(g gameLine) {
	l.games++
	l.pa += g.pa
	l.ab += g.ab
	l.r += g.r
	l.h += g.h
	l.doubles += g.doubles
	l.triples += g.triples
	l.hr += g.hr
	l.rbi += g.rbi
	l.bb += g.bb
	l.ibb += g.ibb
	l.so += g.so
	l.hbp += g.hbp
	l.sh += g.sh
	l.sf += g.sf
	l.sb += g.sb
	l.cs += g.cs
	l.gidp += g.gidp
	l.tb += g.tb
}

// ratio is num/den exactly, or nil when den is 0.
func ratio(num, den int64) *big.Rat {
	if den == 0 {
		return nil
	}
	return big.NewRat(num, den)
}

func (l line) avg() *big.Rat { return ratio(l.h, l.ab) }
func (l line) obp() *big.Rat { return ratio(l.h+l.bb+l.hbp, l.ab+l.bb+l.hbp+l.sf) }
func (l line) slg() *big.Rat { return ratio(l.tb, l.ab) }

// ops is OBP + SLG, added before rounding.
func (l line) ops() *big.Rat {
	obp, slg := l.obp(), l.slg()
	if obp == nil || slg == nil {
		return nil
	}
	return new(big.Rat).Add(obp, slg)
}

// rounded writes a rate to three decimals ("0.312", halves away from zero as
// NUMERIC rounding does), or "NULL".
func rounded(r *big.Rat) string {
	if r == nil {
		return "NULL"
	}
	return r.FloatString(3)
}

// rateText writes a seasonview.Rate the way rounded does, to compare them.
func rateText(r seasonview.Rate) string {
	if !r.Valid {
		return "NULL"
	}
	return fmt.Sprintf("%d.%03d", r.Thousandths/1000, r.Thousandths%1000)
}

func readDemo(t *testing.T) []gameLine {
	t.Helper()
	f, err := os.Open(demoCSV)
	if err != nil {
		t.Fatalf("open demo season: %v", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	header, err := r.Read()
	if err != nil {
		t.Fatalf("read demo header: %v", err)
	}
	column := map[string]int{}
	for i, name := range header {
		column[name] = i
	}
	var lines []gameLine
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read demo season: %v", err)
		}
		field := func(name string) string {
			i, ok := column[name]
			if !ok {
				t.Fatalf("demo season has no column %q", name)
			}
			return rec[i]
		}
		number := func(name string) int64 {
			n, err := strconv.ParseInt(field(name), 10, 64)
			if err != nil {
				t.Fatalf("demo season: %s: %v", name, err)
			}
			return n
		}
		date, err := time.Parse(time.DateOnly, field("game_date"))
		if err != nil {
			t.Fatalf("demo season: game_date: %v", err)
		}
		lines = append(lines, gameLine{
			season: int(number("season")), date: date, gameID: field("game_id"), gameNumber: int(number("game_number")),
			playerID: number("player_id"), name: field("player_name"), team: field("team"),
			opponent: field("opponent"), home: field("home_away") == "home",
			pa: number("plate_appearances"), ab: number("at_bats"), r: number("runs"), h: number("hits"),
			doubles: number("doubles"), triples: number("triples"), hr: number("home_runs"), rbi: number("rbi"),
			bb: number("base_on_balls"), ibb: number("intentional_walks"), so: number("strike_outs"),
			hbp: number("hit_by_pitch"), sh: number("sac_bunts"), sf: number("sac_flies"),
			sb: number("stolen_bases"), cs: number("caught_stealing"), gidp: number("ground_into_double_play"),
			tb: number("total_bases"),
		})
	}
	if len(lines) == 0 {
		t.Fatal("demo season is empty")
	}
	return lines
}

// gamesByPlayer groups lines by player, each player's in game order.
func gamesByPlayer(lines []gameLine) map[int64][]gameLine {
	by := map[int64][]gameLine{}
	for _, g := range lines {
		by[g.playerID] = append(by[g.playerID], g)
	}
	for _, games := range by {
		slices.SortFunc(games, func(a, b gameLine) int {
			return cmp.Or(a.date.Compare(b.date), cmp.Compare(a.gameNumber, b.gameNumber), cmp.Compare(a.gameID, b.gameID))
		})
	}
	return by
}

// migratedWith applies the migrations in a fresh database and loads lines
// into fact_batting_game and dim_player, as the loader would have.
func migratedWith(t *testing.T, lines []gameLine) *pgxpool.Pool {
	t.Helper()
	ctx := t.Context()
	pool := newPool(t)
	if err := migrations.Apply(ctx, pool, migrations.DefaultSchema, nil); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	columns := []string{
		"player_id", "game_id", "game_date", "game_number", "season", "opponent", "home",
		"plate_appearances", "at_bats", "runs", "hits", "singles", "doubles", "triples", "home_runs", "rbi",
		"base_on_balls", "intentional_walks", "strike_outs", "hit_by_pitch", "sac_bunts", "sac_flies",
		"stolen_bases", "caught_stealing", "ground_into_double_play", "total_bases", "extra_base_hits",
		"times_on_base", "event_id", "version",
	}
	rows := make([][]any, 0, len(lines))
	players := map[int64]gameLine{}
	for _, g := range lines {
		rows = append(rows, []any{
			g.playerID, g.gameID, g.date, g.gameNumber, g.season, g.opponent, g.home,
			g.pa, g.ab, g.r, g.h, g.h - g.doubles - g.triples - g.hr, g.doubles, g.triples, g.hr, g.rbi,
			g.bb, g.ibb, g.so, g.hbp, g.sh, g.sf,
			g.sb, g.cs, g.gidp, g.tb, g.doubles + g.triples + g.hr,
			g.h + g.bb + g.hbp, fmt.Sprintf("%d/%s", g.playerID, g.gameID), int64(1),
		})
		if latest, ok := players[g.playerID]; !ok || g.date.After(latest.date) {
			players[g.playerID] = g
		}
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{migrations.DefaultSchema, "fact_batting_game"}, columns, pgx.CopyFromRows(rows)); err != nil {
		t.Fatalf("load fact_batting_game: %v", err)
	}
	for _, p := range players {
		if _, err := pool.Exec(ctx,
			`INSERT INTO `+migrations.DefaultSchema+`.dim_player (player_id, name, team, last_game_date, updated_at) VALUES ($1, $2, $3, $4, now())`,
			p.playerID, p.name, p.team, p.date); err != nil {
			t.Fatalf("load dim_player: %v", err)
		}
	}
	return pool
}

func TestBattingSeasonMatchesTheCSV(t *testing.T) {
	t.Parallel()
	lines := readDemo(t)
	pool := migratedWith(t, lines)

	want := map[int64]line{}
	for _, g := range lines {
		l := want[g.playerID]
		l.add(g)
		want[g.playerID] = l
	}
	games := gamesByPlayer(lines)

	board, err := seasonview.Season(t.Context(), pool, migrations.DefaultSchema, 2024)
	if err != nil {
		t.Fatalf("seasonview.Season: %v", err)
	}
	if len(board) != len(want) {
		t.Fatalf("leaderboard has %d players, want %d", len(board), len(want))
	}
	for _, got := range board {
		w, ok := want[got.ID]
		if !ok {
			t.Errorf("leaderboard has player %d, who is not in the CSV", got.ID)
			continue
		}
		first, last := games[got.ID][0], games[got.ID][len(games[got.ID])-1]
		if got.Name != first.name || got.Team != first.team || got.Season != 2024 {
			t.Errorf("player %d = (%q, %q, %d), want (%q, %q, 2024)", got.ID, got.Name, got.Team, got.Season, first.name, first.team)
		}
		counts := []struct {
			stat      string
			got, want int64
		}{
			{"G", int64(got.Games), w.games}, {"PA", int64(got.PlateAppearances), w.pa}, {"AB", int64(got.AtBats), w.ab},
			{"R", int64(got.Runs), w.r}, {"H", int64(got.Hits), w.h}, {"2B", int64(got.Doubles), w.doubles},
			{"3B", int64(got.Triples), w.triples}, {"HR", int64(got.HomeRuns), w.hr}, {"RBI", int64(got.RBI), w.rbi},
			{"BB", int64(got.BaseOnBalls), w.bb}, {"IBB", int64(got.IntentionalWalks), w.ibb}, {"SO", int64(got.StrikeOuts), w.so},
			{"HBP", int64(got.HitByPitch), w.hbp}, {"SH", int64(got.SacBunts), w.sh}, {"SF", int64(got.SacFlies), w.sf},
			{"SB", int64(got.StolenBases), w.sb}, {"CS", int64(got.CaughtStealing), w.cs},
			{"GIDP", int64(got.GroundIntoDoublePlay), w.gidp}, {"TB", int64(got.TotalBases), w.tb},
		}
		for _, c := range counts {
			if c.got != c.want {
				t.Errorf("%s %s = %d, want %d", got.Name, c.stat, c.got, c.want)
			}
		}
		rates := []struct {
			stat string
			got  seasonview.Rate
			want *big.Rat
		}{{"AVG", got.AVG, w.avg()}, {"OBP", got.OBP, w.obp()}, {"SLG", got.SLG, w.slg()}, {"OPS", got.OPS, w.ops()}}
		for _, r := range rates {
			if rateText(r.got) != rounded(r.want) {
				t.Errorf("%s %s = %s, want %s", got.Name, r.stat, rateText(r.got), rounded(r.want))
			}
		}
		if !got.FirstGameDate.Equal(first.date) || !got.LastGameDate.Equal(last.date) {
			t.Errorf("%s played %s to %s, want %s to %s", got.Name,
				got.FirstGameDate.Format(time.DateOnly), got.LastGameDate.Format(time.DateOnly),
				first.date.Format(time.DateOnly), last.date.Format(time.DateOnly))
		}
	}
	// Best OPS first.
	for i := 1; i < len(board); i++ {
		if want[board[i-1].ID].ops().Cmp(want[board[i].ID].ops()) < 0 {
			t.Errorf("leaderboard order: %s (%s) before %s (%s)", board[i-1].Name, board[i-1].OPS, board[i].Name, board[i].OPS)
		}
	}

	// Another season is empty, not an error.
	other, err := seasonview.Season(t.Context(), pool, migrations.DefaultSchema, 2023)
	if err != nil || len(other) != 0 {
		t.Errorf("seasonview.Season(2023) = %d rows, %v; want none and no error", len(other), err)
	}
}

func TestBattingCumulativeRunsThroughTheSeason(t *testing.T) {
	t.Parallel()
	lines := readDemo(t)
	pool := migratedWith(t, lines)
	games := gamesByPlayer(lines)

	series, err := seasonview.CumulativeOPS(t.Context(), pool, migrations.DefaultSchema, 2024)
	if err != nil {
		t.Fatalf("seasonview.CumulativeOPS: %v", err)
	}
	board, err := seasonview.Season(t.Context(), pool, migrations.DefaultSchema, 2024)
	if err != nil {
		t.Fatalf("seasonview.Season: %v", err)
	}
	seasonOPS := map[int64]seasonview.Rate{}
	for _, p := range board {
		seasonOPS[p.ID] = p.OPS
	}

	if len(series) != len(games) {
		t.Fatalf("CumulativeOPS has %d players, want %d", len(series), len(games))
	}
	for player, points := range series {
		played := games[player.ID]
		if player.Name != played[0].name {
			t.Errorf("player %d is named %q, want %q", player.ID, player.Name, played[0].name)
		}
		if len(points) != len(played) {
			t.Errorf("%s has %d points, want one per game (%d)", player.Name, len(points), len(played))
			continue
		}
		// Every point against the running sums of the CSV, in game order.
		var toDate line
		for i, g := range played {
			toDate.add(g)
			p := points[i]
			if !p.Date.Equal(g.date) || p.GameNumber != g.gameNumber || p.Games != i+1 || int64(p.PlateAppearances) != toDate.pa {
				t.Errorf("%s point %d = (%s game %d, G %d, PA %d), want (%s game %d, G %d, PA %d)", player.Name, i,
					p.Date.Format(time.DateOnly), p.GameNumber, p.Games, p.PlateAppearances,
					g.date.Format(time.DateOnly), g.gameNumber, i+1, toDate.pa)
			}
			if rateText(p.OPS) != rounded(toDate.ops()) {
				t.Errorf("%s OPS after %s game %d = %s, want %s", player.Name, g.date.Format(time.DateOnly), g.gameNumber, rateText(p.OPS), rounded(toDate.ops()))
			}
		}
		if last := points[len(points)-1].OPS; last != seasonOPS[player.ID] {
			t.Errorf("%s: last cumulative OPS %s, season OPS %s: want them equal", player.Name, last, seasonOPS[player.ID])
		}
	}
}

// TestRatesWithoutAtBats: a player whose first game has no at bat (a walk),
// and a pinch runner who never comes to the plate. Their rates are NULL, not
// a division by zero.
func TestRatesWithoutAtBats(t *testing.T) {
	t.Parallel()
	base := gameLine{season: 2024, team: "LAD", opponent: "SD", home: true}
	walker, runner := base, base
	walker.playerID, walker.name = 900001, "Patient Walker"
	runner.playerID, runner.name = 900002, "Pinch Runner"
	game := func(g gameLine, date string, edit func(*gameLine)) gameLine {
		g.date, _ = time.Parse(time.DateOnly, date)
		g.gameID = "LAN" + g.date.Format("20060102") + "0"
		edit(&g)
		return g
	}
	lines := []gameLine{
		game(walker, "2024-04-01", func(g *gameLine) { g.pa, g.bb = 1, 1 }),
		game(walker, "2024-04-02", func(g *gameLine) { g.pa, g.ab, g.h, g.doubles, g.tb = 4, 4, 1, 1, 2 }),
		game(runner, "2024-04-01", func(g *gameLine) { g.sb = 1 }),
	}
	pool := migratedWith(t, lines)

	type rates struct{ avg, obp, slg, ops string }
	readCumulative := func(playerID int64) []rates {
		rows, err := pool.Query(t.Context(), `
SELECT COALESCE(CAST(avg AS text), 'NULL'), COALESCE(CAST(obp AS text), 'NULL'),
       COALESCE(CAST(slg AS text), 'NULL'), COALESCE(CAST(ops AS text), 'NULL')
FROM `+migrations.DefaultSchema+`.batting_cumulative WHERE player_id = $1 ORDER BY games`, playerID)
		if err != nil {
			t.Fatalf("read batting_cumulative: %v", err)
		}
		got, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (rates, error) {
			var r rates
			err := row.Scan(&r.avg, &r.obp, &r.slg, &r.ops)
			return r, err
		})
		if err != nil {
			t.Fatalf("read batting_cumulative: %v", err)
		}
		return got
	}
	// After the walk: OBP 1/1, nothing else. After 1-for-4 with a double:
	// AVG 1/4, OBP 2/5, SLG 2/4, OPS .400 + .500.
	wantWalker := []rates{{"NULL", "1.000", "NULL", "NULL"}, {"0.250", "0.400", "0.500", "0.900"}}
	if got := readCumulative(walker.playerID); !slices.Equal(got, wantWalker) {
		t.Errorf("walker's cumulative rates = %v, want %v", got, wantWalker)
	}
	if got, want := readCumulative(runner.playerID), []rates{{"NULL", "NULL", "NULL", "NULL"}}; !slices.Equal(got, want) {
		t.Errorf("runner's cumulative rates = %v, want %v", got, want)
	}

	board, err := seasonview.Season(t.Context(), pool, migrations.DefaultSchema, 2024)
	if err != nil {
		t.Fatalf("seasonview.Season: %v", err)
	}
	if len(board) != 2 || board[0].ID != walker.playerID || board[1].ID != runner.playerID {
		t.Fatalf("leaderboard = %+v, want the walker, then the runner (no OPS sorts last)", board)
	}
	if r := board[1]; r.AVG.Valid || r.OBP.Valid || r.SLG.Valid || r.OPS.Valid || r.Games != 1 || r.StolenBases != 1 {
		t.Errorf("runner's season = G %d SB %d, rates %v %v %v %v; want G 1 SB 1 and no rates", r.Games, r.StolenBases, r.AVG, r.OBP, r.SLG, r.OPS)
	}

	series, err := seasonview.CumulativeOPS(t.Context(), pool, migrations.DefaultSchema, 2024)
	if err != nil {
		t.Fatalf("seasonview.CumulativeOPS: %v", err)
	}
	points := series[seasonview.Player{ID: walker.playerID, Name: walker.name}]
	if len(points) != 2 || points[0].OPS.Valid || !points[1].OPS.Valid || points[1].OPS.Thousandths != 900 {
		t.Errorf("walker's cumulative OPS = %+v, want no OPS after the walk, then .900", points)
	}
}

// rollingRow is one row of batting_rolling, its rates as text.
type rollingRow struct {
	gamesInWindow              int
	pa, ab, h, hr, rbi, bb, so int64
	avg, obp, slg, ops         string
}

func TestBattingRollingWindows(t *testing.T) {
	t.Parallel()
	lines := readDemo(t)
	pool := migratedWith(t, lines)
	games := gamesByPlayer(lines)

	// expected sums the player's last n games up to and including the one at
	// index end (in game order).
	expected := func(played []gameLine, end, n int) rollingRow {
		var w line
		for _, g := range played[max(0, end-n+1) : end+1] {
			w.add(g)
		}
		return rollingRow{
			gamesInWindow: int(w.games), pa: w.pa, ab: w.ab, h: w.h, hr: w.hr, rbi: w.rbi, bb: w.bb, so: w.so,
			avg: rounded(w.avg()), obp: rounded(w.obp()), slg: rounded(w.slg()), ops: rounded(w.ops()),
		}
	}
	read := func(playerID int64, gameID string, windowGames int) rollingRow {
		var r rollingRow
		err := pool.QueryRow(t.Context(), `
SELECT games_in_window, plate_appearances, at_bats, hits, home_runs, rbi, base_on_balls, strike_outs,
       COALESCE(CAST(avg AS text), 'NULL'), COALESCE(CAST(obp AS text), 'NULL'),
       COALESCE(CAST(slg AS text), 'NULL'), COALESCE(CAST(ops AS text), 'NULL')
FROM `+migrations.DefaultSchema+`.batting_rolling
WHERE player_id = $1 AND game_id = $2 AND window_games = $3`, playerID, gameID, windowGames).Scan(
			&r.gamesInWindow, &r.pa, &r.ab, &r.h, &r.hr, &r.rbi, &r.bb, &r.so, &r.avg, &r.obp, &r.slg, &r.ops)
		if err != nil {
			t.Fatalf("read batting_rolling for %d in %s over %d games: %v", playerID, gameID, windowGames, err)
		}
		return r
	}
	indexOf := func(played []gameLine, gameID string) int {
		i := slices.IndexFunc(played, func(g gameLine) bool { return g.gameID == gameID })
		if i < 0 {
			t.Fatalf("game %s not in the CSV", gameID)
		}
		return i
	}

	const freeman, betts, ohtani = 518692, 605141, 660271
	for _, tc := range []struct {
		name     string
		playerID int64
		gameID   string
		window   int
	}{
		// The second game of a doubleheader: the window must order the day's games.
		{"Freeman, 7 games to the 2nd game of 2024-05-28", freeman, "NYN202405282", 7},
		{"Freeman, 15 games to the 2nd game of 2024-05-28", freeman, "NYN202405282", 15},
		// Ohtani's 0-for-0, five-walk game ends this window.
		{"Ohtani, 7 games to 2024-05-20", ohtani, "LAN202405200", 7},
		// Betts' third game: a window not yet full.
		{"Betts, 7 games to his 3rd game", betts, games[betts][2].gameID, 7},
	} {
		played := games[tc.playerID]
		want := expected(played, indexOf(played, tc.gameID), tc.window)
		if got := read(tc.playerID, tc.gameID, tc.window); got != want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, want)
		}
	}

	var rows, windows int
	if err := pool.QueryRow(t.Context(),
		`SELECT count(*), count(DISTINCT window_games) FROM `+migrations.DefaultSchema+`.batting_rolling`).Scan(&rows, &windows); err != nil {
		t.Fatalf("count batting_rolling: %v", err)
	}
	if rows != 2*len(lines) || windows != 2 {
		t.Errorf("batting_rolling has %d rows in %d window sizes, want %d in 2 (7 and 15 for every game)", rows, windows, 2*len(lines))
	}
}

// TestBattingViewsMigrateDown: the Down section drops the three views and
// leaves the tables; Apply brings them back.
func TestBattingViewsMigrateDown(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := newPool(t)
	const schema = "views_down"
	if err := migrations.Apply(ctx, pool, schema, nil); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	wantViews := []string{"batting_cumulative", "batting_rolling", "batting_season"}
	if got := viewsIn(t, pool, schema); !slices.Equal(got, wantViews) {
		t.Fatalf("views after Apply = %v, want %v", got, wantViews)
	}

	// Goose over the same files, from disk, with the same version table.
	connConfig := pool.Config().ConnConfig.Copy()
	if connConfig.RuntimeParams == nil {
		connConfig.RuntimeParams = map[string]string{}
	}
	connConfig.RuntimeParams["search_path"] = schema
	db := stdlib.OpenDB(*connConfig)
	t.Cleanup(func() { _ = db.Close() })
	down(ctx, t, db, schema, 4)

	if got := viewsIn(t, pool, schema); len(got) != 0 {
		t.Errorf("views after migrating down to 4 = %v, want none", got)
	}
	// Down to 4 also drops stream_gap (00009) and batting_game_retraction (00010).
	wantAt4 := slices.DeleteFunc(slices.Clone(wantTables), func(s string) bool { return s == "stream_gap" || s == "batting_game_retraction" })
	if got := tablesIn(t, pool, schema); !slices.Equal(got, wantAt4) {
		t.Errorf("tables after migrating down to 4 = %v, want %v", got, wantAt4)
	}
	if err := migrations.Apply(ctx, pool, schema, nil); err != nil {
		t.Fatalf("Apply after down: %v", err)
	}
	if got := viewsIn(t, pool, schema); !slices.Equal(got, wantViews) {
		t.Errorf("views after Apply again = %v, want %v", got, wantViews)
	}
}

func down(ctx context.Context, t *testing.T, db *sql.DB, schema string, version int64) {
	t.Helper()
	provider, err := goose.NewProvider(goose.DialectPostgres, db, os.DirFS("sql"),
		goose.WithTableName(schema+".goose_db_version"),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		t.Fatalf("goose provider: %v", err)
	}
	if _, err := provider.DownTo(ctx, version); err != nil {
		t.Fatalf("migrate down to %d: %v", version, err)
	}
}

func viewsIn(t *testing.T, pool *pgxpool.Pool, schema string) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT viewname FROM pg_views WHERE schemaname = $1 ORDER BY viewname`, schema)
	if err != nil {
		t.Fatalf("list views: %v", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("list views: %v", err)
	}
	return names
}
