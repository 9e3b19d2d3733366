package migrations_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations"
)

// TestRedshiftViewsEqualPostgreSQLViews loads the same rows (the demo season, plus lines
// that reach the edges: no at bat, a second season, a doubleheader, a player without a
// dim_player row) into a schema of each engine and compares the three views row for row:
// the Redshift SQL computes what the PostgreSQL views compute.
func TestRedshiftViewsEqualPostgreSQLViews(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	lines := readDemo(t)
	day := func(s string) time.Time {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	walker := gameLine{season: 2023, date: day("2023-09-30"), gameID: "SDN202309300", playerID: 900001, name: "Patient Walker",
		team: "LAD", opponent: "SD", pa: 2, bb: 1, hbp: 1}
	first, second := walker, walker
	first.bb, first.hbp, second.bb, second.hbp = 0, 0, 0, 0
	first.date, first.gameID, first.gameNumber, first.pa, first.ab, first.h, first.tb = day("2023-10-01"), "SDN202310011", 1, 4, 4, 2, 5
	first.doubles, first.triples = 1, 1
	second.date, second.gameID, second.gameNumber, second.pa, second.ab, second.sf = day("2023-10-01"), "SDN202310012", 2, 3, 2, 1
	lines = append(lines, walker, first, second)
	pool := migratedWith(t, lines)
	const pg = migrations.DefaultSchema
	// A fact row whose player has no dim_player row: the views keep it, name and team NULL.
	if _, err := pool.Exec(ctx, `
INSERT INTO `+pg+`.fact_batting_game (player_id, game_id, game_date, game_number, season, opponent, home,
  plate_appearances, at_bats, runs, hits, singles, doubles, triples, home_runs, rbi, base_on_balls,
  intentional_walks, strike_outs, hit_by_pitch, sac_bunts, sac_flies, stolen_bases, caught_stealing,
  ground_into_double_play, total_bases, extra_base_hits, times_on_base, event_id, version)
VALUES (900002, 'ARI202404010', '2024-04-01', 0, 2024, 'ARI', false, 5, 5, 1, 3, 2, 0, 0, 1, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 6, 1, 3, 'e', 1)`); err != nil {
		t.Fatalf("insert a fact row without a player: %v", err)
	}

	const rs = "rs"
	applyRedshift(t, pool, rs)
	for _, table := range []string{"fact_batting_game", "dim_player"} {
		// The columns are the same, in the same order (TestRedshiftTablesMatchPostgreSQL).
		if _, err := pool.Exec(ctx, `INSERT INTO `+rs+`.`+table+` SELECT * FROM `+pg+`.`+table); err != nil {
			t.Fatalf("copy %s: %v", table, err)
		}
	}

	seasons := map[[2]int64]bool{{900002, 2024}: true}
	for _, g := range lines {
		seasons[[2]int64{g.playerID, int64(g.season)}] = true
	}
	games := len(lines) + 1 // the row without a player included
	for view, wantRows := range map[string]int{"batting_season": len(seasons), "batting_cumulative": games, "batting_rolling": 2 * games} {
		pgCols, rsCols := columnsOf(t, pool, pg, view), columnsOf(t, pool, rs, view)
		if len(pgCols) == 0 || len(pgCols) != len(rsCols) {
			t.Fatalf("%s: columns on PostgreSQL %v, on Redshift %v", view, pgCols, rsCols)
		}
		for i := range pgCols {
			if pgCols[i].name != rsCols[i].name || !compatibleType(pgCols[i].dataType, rsCols[i].dataType) {
				t.Errorf("%s column %d: %+v on PostgreSQL, %+v on Redshift", view, i+1, pgCols[i], rsCols[i])
			}
		}
		var rows, differ int
		if err := pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s.%s`, rs, view)).Scan(&rows); err != nil {
			t.Fatalf("count %s: %v", view, err)
		}
		if err := pool.QueryRow(ctx, fmt.Sprintf(`
SELECT count(*) FROM (
  (SELECT * FROM %[1]s.%[3]s EXCEPT ALL SELECT * FROM %[2]s.%[3]s)
  UNION ALL
  (SELECT * FROM %[2]s.%[3]s EXCEPT ALL SELECT * FROM %[1]s.%[3]s)
) AS d`, pg, rs, view)).Scan(&differ); err != nil {
			t.Fatalf("compare %s: %v", view, err)
		}
		if rows != wantRows || differ != 0 {
			t.Errorf("%s: %d rows on Redshift, %d rows differ from PostgreSQL's; want %d rows, none differing", view, rows, differ, wantRows)
		}
	}
	// The edge rows are there, with the rates the official formulas give.
	var name *string
	var avg, obp, slg, ops *string
	if err := pool.QueryRow(ctx, `SELECT name, CAST(avg AS text), CAST(obp AS text), CAST(slg AS text), CAST(ops AS text)
FROM `+rs+`.batting_season WHERE player_id = 900001 AND season = 2023`).Scan(&name, &avg, &obp, &slg, &ops); err != nil {
		t.Fatalf("read the walker's season: %v", err)
	}
	// AB 6, H 2, BB 1, HBP 1, SF 1, TB 5: AVG .333, OBP 4/9 .444, SLG .833, OPS 1.278.
	if name == nil || *name != "Patient Walker" || deref(avg) != "0.333" || deref(obp) != "0.444" || deref(slg) != "0.833" || deref(ops) != "1.278" {
		t.Errorf("walker's 2023 season on Redshift = %v AVG %s OBP %s SLG %s OPS %s; want Patient Walker .333 .444 .833 1.278",
			deref(name), deref(avg), deref(obp), deref(slg), deref(ops))
	}
	var unnamed int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+rs+`.batting_rolling WHERE player_id = 900002 AND name IS NULL`).Scan(&unnamed); err != nil || unnamed != 2 {
		t.Errorf("rolling rows of the player without dim_player = %d (%v), want 2 (one per window size)", unnamed, err)
	}
}

func deref(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}
