// Package seasonview reads the warehouse's season model: the batting_season and
// batting_cumulative views the loader's migrations create. It is the read side of
// those views, shared by the loader's tests of them (services/loader/internal/migrations)
// and the boxscore CLI's report command (cmd/boxscore), which presents it.
package seasonview

import (
	"cmp"
	"context"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Querier is the part of pgx the queries need: *pgx.Conn, *pgxpool.Pool and
// pgx.Tx all satisfy it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Rate is a batting rate (AVG, OBP, SLG or OPS) as the warehouse rounds it:
// a whole number of thousandths, so .312 is 312 and 1.021 is 1021. Valid is
// false when the rate is undefined because its denominator is zero (no AVG
// without an at bat).
type Rate struct {
	Thousandths int
	Valid       bool
}

// Float64 returns the rate as a number (0.312); 0 when it is not valid.
func (r Rate) Float64() float64 {
	return float64(r.Thousandths) / 1000
}

// String writes the rate the way baseball does: ".312", "1.021", and ".---"
// when it is undefined (the MLB Stats API's spelling).
func (r Rate) String() string {
	if !r.Valid {
		return ".---"
	}
	sign := ""
	n := r.Thousandths
	if n < 0 { // rates are never negative; print one faithfully all the same
		sign, n = "-", -n
	}
	if n < 1000 {
		return fmt.Sprintf("%s.%03d", sign, n)
	}
	return fmt.Sprintf("%s%d.%03d", sign, n/1000, n%1000)
}

// Player identifies a player in a report.
type Player struct {
	ID   int64
	Name string
}

// PlayerSeason is one row of batting_season: a player's totals and rates for
// one season.
type PlayerSeason struct {
	Player
	Team   string
	Season int

	Games                int
	PlateAppearances     int
	AtBats               int
	Runs                 int
	Hits                 int
	Doubles              int
	Triples              int
	HomeRuns             int
	RBI                  int
	BaseOnBalls          int
	IntentionalWalks     int
	StrikeOuts           int
	HitByPitch           int
	SacBunts             int
	SacFlies             int
	StolenBases          int
	CaughtStealing       int
	GroundIntoDoublePlay int
	TotalBases           int

	AVG, OBP, SLG, OPS Rate

	FirstGameDate, LastGameDate time.Time
}

// Leaderboard is a season's player lines, best OPS first (players without an
// OPS last, ties broken by plate appearances, then by name).
type Leaderboard []PlayerSeason

// Point is a player's season-to-date line as of the end of one game.
type Point struct {
	Date time.Time
	// GameNumber is 0 for a single game and 1 or 2 for the games of a
	// doubleheader.
	GameNumber int
	// Games is how many games the player has played this season, this one
	// included.
	Games            int
	PlateAppearances int
	OPS              Rate
}

// Season reads every player's line for season from batting_season in the
// warehouse schema, as a Leaderboard. It returns an empty Leaderboard, not an
// error, when the season has no games.
func Season(ctx context.Context, db Querier, schema string, season int) (Leaderboard, error) {
	query := `
SELECT player_id, name, team, season,
       games, plate_appearances, at_bats, runs, hits, doubles, triples, home_runs, rbi,
       base_on_balls, intentional_walks, strike_outs, hit_by_pitch, sac_bunts, sac_flies,
       stolen_bases, caught_stealing, ground_into_double_play, total_bases,
       avg, obp, slg, ops, first_game_date, last_game_date
FROM ` + pgx.Identifier{schema, "batting_season"}.Sanitize() + `
WHERE season = $1`
	rows, err := db.Query(ctx, query, season)
	if err != nil {
		return nil, fmt.Errorf("seasonview: read %s.batting_season: %w", schema, err)
	}
	board, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (PlayerSeason, error) {
		var p PlayerSeason
		r := seasonRow{p: &p}
		if err := row.Scan(r.dest()...); err != nil {
			return p, err
		}
		return p, r.finish()
	})
	if err != nil {
		return nil, fmt.Errorf("seasonview: read %s.batting_season: %w", schema, err)
	}
	SortByOPS(board)
	return board, nil
}

// CumulativeOPS reads each player's season-to-date OPS after every game of
// season from batting_cumulative, in game order. A point's OPS is not valid
// while the player has no at bat yet.
func CumulativeOPS(ctx context.Context, db Querier, schema string, season int) (map[Player][]Point, error) {
	return cumulativeOPS(ctx, db, schema, "season = $1", []any{season})
}

// cumulativeOPS reads the points of batting_cumulative that where (over args) selects.
func cumulativeOPS(ctx context.Context, db Querier, schema, where string, args []any) (map[Player][]Point, error) {
	query := `
SELECT player_id, name, game_date, game_number, games, plate_appearances, ops
FROM ` + pgx.Identifier{schema, "batting_cumulative"}.Sanitize() + `
WHERE ` + where + `
ORDER BY player_id, games`
	rows, err := db.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("seasonview: read %s.batting_cumulative: %w", schema, err)
	}
	series := map[Player][]Point{}
	var (
		id    int64
		name  pgtype.Text
		point Point
		ops   pgtype.Numeric
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &name, &point.Date, &point.GameNumber, &point.Games, &point.PlateAppearances, &ops}, func() error {
		var err error
		if point.OPS, err = rateFromNumeric(ops); err != nil {
			return fmt.Errorf("player %d on %s: ops: %w", id, point.Date.Format(time.DateOnly), err)
		}
		player := Player{ID: id, Name: playerName(id, name)}
		series[player] = append(series[player], point)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("seasonview: read %s.batting_cumulative: %w", schema, err)
	}
	return series, nil
}

// playerName is the player's name, or a stand-in naming the id when the
// warehouse has no dim_player row for them.
func playerName(id int64, name pgtype.Text) string {
	if name.Valid && name.String != "" {
		return name.String
	}
	return fmt.Sprintf("player %d", id)
}

var thousand = big.NewInt(1000)

// seasonRow scans the columns a PlayerSeason is read from, in batting_season's order (the
// league query computes the same columns from the fact table): name and team NULL when the
// player is unknown, rates NULL when their denominator is 0.
type seasonRow struct {
	p                  *PlayerSeason
	name, team         pgtype.Text
	avg, obp, slg, ops pgtype.Numeric
}

// dest returns the scan destinations in the columns' order, then extra.
func (r *seasonRow) dest(extra ...any) []any {
	p := r.p
	return append([]any{&p.ID, &r.name, &r.team, &p.Season,
		&p.Games, &p.PlateAppearances, &p.AtBats, &p.Runs, &p.Hits, &p.Doubles, &p.Triples, &p.HomeRuns, &p.RBI,
		&p.BaseOnBalls, &p.IntentionalWalks, &p.StrikeOuts, &p.HitByPitch, &p.SacBunts, &p.SacFlies,
		&p.StolenBases, &p.CaughtStealing, &p.GroundIntoDoublePlay, &p.TotalBases,
		&r.avg, &r.obp, &r.slg, &r.ops, &p.FirstGameDate, &p.LastGameDate}, extra...)
}

// finish sets the player's name, team and rates from what was scanned.
func (r *seasonRow) finish() error {
	p := r.p
	p.Name = playerName(p.ID, r.name)
	p.Team = r.team.String
	for _, rate := range []struct {
		dst *Rate
		src pgtype.Numeric
		col string
	}{{&p.AVG, r.avg, "avg"}, {&p.OBP, r.obp, "obp"}, {&p.SLG, r.slg, "slg"}, {&p.OPS, r.ops, "ops"}} {
		var err error
		if *rate.dst, err = rateFromNumeric(rate.src); err != nil {
			return fmt.Errorf("player %d %s: %w", p.ID, rate.col, err)
		}
	}
	return nil
}

// rateFromNumeric converts a rate column (NUMERIC(4,3) or NULL) to a Rate,
// exactly: pgx gives the value as an integer and a power of ten.
func rateFromNumeric(n pgtype.Numeric) (Rate, error) {
	if !n.Valid {
		return Rate{}, nil
	}
	if n.NaN || n.InfinityModifier != pgtype.Finite {
		return Rate{}, fmt.Errorf("rate is not a finite number")
	}
	// value = Int × 10^Exp, so thousandths = Int × 10^(Exp+3).
	milli := new(big.Int).Set(n.Int)
	if shift := int64(n.Exp) + 3; shift >= 0 {
		milli.Mul(milli, new(big.Int).Exp(big.NewInt(10), big.NewInt(shift), nil))
	} else {
		var rem big.Int
		milli.QuoRem(milli, new(big.Int).Exp(big.NewInt(10), big.NewInt(-shift), nil), &rem)
		if rem.Sign() != 0 {
			return Rate{}, fmt.Errorf("rate %se%d has more than three decimals", n.Int, n.Exp)
		}
	}
	if !milli.IsInt64() || milli.CmpAbs(new(big.Int).Mul(thousand, thousand)) > 0 {
		return Rate{}, fmt.Errorf("rate %s thousandths is out of range", milli)
	}
	return Rate{Thousandths: int(milli.Int64()), Valid: true}, nil
}

// SortByOPS orders player seasons as a Leaderboard is: best OPS first; players
// without an OPS come last; ties go to more plate appearances, then to the name,
// then the id, so the order never depends on the input's.
func SortByOPS(rows []PlayerSeason) {
	slices.SortFunc(rows, func(a, b PlayerSeason) int {
		if a.OPS.Valid != b.OPS.Valid {
			if a.OPS.Valid {
				return -1
			}
			return 1
		}
		return cmp.Or(
			cmp.Compare(b.OPS.Thousandths, a.OPS.Thousandths),
			cmp.Compare(b.PlateAppearances, a.PlateAppearances),
			strings.Compare(a.Name, b.Name),
			cmp.Compare(a.ID, b.ID),
		)
	})
}
