package seasonview

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// LeagueFilter selects the batting lines a league report adds up.
type LeagueFilter struct {
	Season int
	// From and To bound the game dates (inclusive); a zero time leaves that side open.
	From, To time.Time
	// Team keeps the players whose current team (dim_player.team) it is; "" keeps all.
	Team string
}

// LeagueLine is one player's totals over the filter's games, with the games of the
// player's current team over the same dates.
type LeagueLine struct {
	PlayerSeason
	// TeamGames is how many distinct games the player's current team played in the
	// filter's dates, counted from the warehouse: the games (date and game number) in which
	// a batter had that team as opponent. Every game has batters on both sides, so this is
	// exact when the warehouse holds the league; it is 0 when it holds no line of the team's
	// opponents (a warehouse of one team's lines), or when the player has no team.
	TeamGames int
}

// League reads every player's totals and rates over the lines LeagueFilter selects, straight
// from fact_batting_game (a date range cannot go through batting_season, which adds up
// whole seasons), with the same formulas as the batting_season view. Rows come in no
// particular order. The SQL is portable to Amazon Redshift: no COUNT(DISTINCT row), no
// FILTER, explicit NUMERIC casts, and its arguments are integers, dates and the team.
func League(ctx context.Context, db Querier, schema string, f LeagueFilter) ([]LeagueLine, error) {
	query, args := leagueQuery(schema, f)
	rows, err := db.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("seasonview: read the league from %s.fact_batting_game: %w", schema, err)
	}
	lines, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (LeagueLine, error) {
		var (
			l         LeagueLine
			teamGames pgtype.Int8
		)
		r := seasonRow{p: &l.PlayerSeason}
		if err := row.Scan(r.dest(&teamGames)...); err != nil {
			return l, err
		}
		l.TeamGames = int(teamGames.Int64)
		return l, r.finish()
	})
	if err != nil {
		return nil, fmt.Errorf("seasonview: read the league from %s.fact_batting_game: %w", schema, err)
	}
	return lines, nil
}

// leagueQuery writes League's query and its arguments: only the filters set are in the
// WHERE clauses, so the planner sees plain range predicates (no "$2 IS NULL OR ...").
func leagueQuery(schema string, f LeagueFilter) (string, []any) {
	args := []any{f.Season}
	where := []string{"f.season = $1"}
	if !f.From.IsZero() {
		args = append(args, f.From)
		where = append(where, "f.game_date >= CAST($"+strconv.Itoa(len(args))+" AS DATE)")
	}
	if !f.To.IsZero() {
		args = append(args, f.To)
		where = append(where, "f.game_date <= CAST($"+strconv.Itoa(len(args))+" AS DATE)")
	}
	teamFilter := ""
	if f.Team != "" {
		args = append(args, f.Team)
		teamFilter = "\nWHERE p.team = $" + strconv.Itoa(len(args))
	}
	fact := pgx.Identifier{schema, "fact_batting_game"}.Sanitize()
	// Both parts read the fact table with the same predicates rather than share one CTE:
	// PostgreSQL would materialize it (spilling a season to disk), while each scan alone is
	// a plain (or, for the team games, an index-only) scan.
	cond := strings.Join(where, " AND ")
	dim := pgx.Identifier{schema, "dim_player"}.Sanitize()
	return `
WITH totals AS (
    SELECT
        player_id,
        MIN(season)                  AS season,
        COUNT(*)                     AS games,
        SUM(plate_appearances)       AS plate_appearances,
        SUM(at_bats)                 AS at_bats,
        SUM(runs)                    AS runs,
        SUM(hits)                    AS hits,
        SUM(doubles)                 AS doubles,
        SUM(triples)                 AS triples,
        SUM(home_runs)               AS home_runs,
        SUM(rbi)                     AS rbi,
        SUM(base_on_balls)           AS base_on_balls,
        SUM(intentional_walks)       AS intentional_walks,
        SUM(strike_outs)             AS strike_outs,
        SUM(hit_by_pitch)            AS hit_by_pitch,
        SUM(sac_bunts)               AS sac_bunts,
        SUM(sac_flies)               AS sac_flies,
        SUM(stolen_bases)            AS stolen_bases,
        SUM(caught_stealing)         AS caught_stealing,
        SUM(ground_into_double_play) AS ground_into_double_play,
        SUM(total_bases)             AS total_bases,
        MIN(game_date)               AS first_game_date,
        MAX(game_date)               AS last_game_date
    FROM ` + fact + ` AS f
    WHERE ` + cond + `
    GROUP BY player_id
),
team_games AS (
    SELECT team, COUNT(*) AS games
    FROM (SELECT DISTINCT f.opponent AS team, f.game_date, f.game_number
          FROM ` + fact + ` AS f
          WHERE ` + cond + `) AS g
    GROUP BY team
)
SELECT
    t.player_id, p.name, p.team, t.season,
    t.games, t.plate_appearances, t.at_bats, t.runs, t.hits, t.doubles, t.triples, t.home_runs, t.rbi,
    t.base_on_balls, t.intentional_walks, t.strike_outs, t.hit_by_pitch, t.sac_bunts, t.sac_flies,
    t.stolen_bases, t.caught_stealing, t.ground_into_double_play, t.total_bases,
    CAST(ROUND(CAST(t.hits AS NUMERIC(18, 6)) / NULLIF(t.at_bats, 0), 3) AS NUMERIC(4, 3)) AS avg,
    CAST(ROUND(CAST(t.hits + t.base_on_balls + t.hit_by_pitch AS NUMERIC(18, 6))
               / NULLIF(t.at_bats + t.base_on_balls + t.hit_by_pitch + t.sac_flies, 0), 3) AS NUMERIC(4, 3)) AS obp,
    CAST(ROUND(CAST(t.total_bases AS NUMERIC(18, 6)) / NULLIF(t.at_bats, 0), 3) AS NUMERIC(4, 3)) AS slg,
    CAST(ROUND(CAST(t.hits + t.base_on_balls + t.hit_by_pitch AS NUMERIC(18, 6))
               / NULLIF(t.at_bats + t.base_on_balls + t.hit_by_pitch + t.sac_flies, 0)
               + CAST(t.total_bases AS NUMERIC(18, 6)) / NULLIF(t.at_bats, 0), 3) AS NUMERIC(4, 3)) AS ops,
    t.first_game_date, t.last_game_date,
    CAST(COALESCE(g.games, 0) AS BIGINT) AS team_games
FROM totals AS t
LEFT JOIN ` + dim + ` AS p ON p.player_id = t.player_id
LEFT JOIN team_games AS g ON g.team = p.team` + teamFilter, args
}

// CumulativeFilter selects the points CumulativeOPSOf reads.
type CumulativeFilter struct {
	Season int
	// Players are the players to read; none reads every player.
	Players []int64
	// From and To bound the points' dates (inclusive; zero: open). A point's values are
	// still season to date.
	From, To time.Time
}

// CumulativeOPSOf is CumulativeOPS for chosen players and dates: a league has hundreds of
// players, a chart a handful.
func CumulativeOPSOf(ctx context.Context, db Querier, schema string, f CumulativeFilter) (map[Player][]Point, error) {
	args := []any{f.Season}
	where := []string{"season = $1"}
	if len(f.Players) > 0 {
		ids := make([]string, len(f.Players))
		for i, id := range f.Players {
			args = append(args, id)
			ids[i] = "$" + strconv.Itoa(len(args))
		}
		where = append(where, "player_id IN ("+strings.Join(ids, ", ")+")")
	}
	if !f.From.IsZero() {
		args = append(args, f.From)
		where = append(where, "game_date >= CAST($"+strconv.Itoa(len(args))+" AS DATE)")
	}
	if !f.To.IsZero() {
		args = append(args, f.To)
		where = append(where, "game_date <= CAST($"+strconv.Itoa(len(args))+" AS DATE)")
	}
	return cumulativeOPS(ctx, db, schema, strings.Join(where, " AND "), args)
}
