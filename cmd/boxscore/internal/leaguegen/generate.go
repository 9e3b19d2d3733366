// Package leaguegen generates a whole simulated major-league regular season as a game-log
// CSV (package gamelog's format, with a version column for scoring changes): 30 teams on a
// real-shaped schedule, about 1,300 players with injuries, call-ups and trades, batting
// lines from a plate-appearance simulation, and corrections. The same seed and options
// give a byte-identical file. See README.md for what is simulated and what is not.
package leaguegen

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/gamelog"
)

// Options select the season and the part of it to emit. The whole season is always
// simulated, so a window or a team subset is exactly the matching part of the full file.
type Options struct {
	Seed   uint64
	Season int       // the year; 0 means 2024
	From   time.Time // first game date kept; zero: opening day
	To     time.Time // last game date kept; zero: the end of the season
	Teams  []string  // team codes whose lines are kept; empty: all 30
}

// Totals are league counting totals: the sum of the latest version of every line.
type Totals struct {
	Lines                                                                     int
	PlateAppearances, AtBats, Runs, Hits, Doubles, Triples, HomeRuns, RBI     int
	BaseOnBalls, IntentionalWalks, StrikeOuts, HitByPitch, SacBunts, SacFlies int
	StolenBases, CaughtStealing, GroundIntoDoublePlay                         int
}

// AVG is hits per at bat.
func (t Totals) AVG() float64 { return ratio(t.Hits, t.AtBats) }

// OBP is (H + BB + HBP) / (AB + BB + HBP + SF).
func (t Totals) OBP() float64 {
	return ratio(t.Hits+t.BaseOnBalls+t.HitByPitch, t.AtBats+t.BaseOnBalls+t.HitByPitch+t.SacFlies)
}

// SLG is total bases per at bat.
func (t Totals) SLG() float64 {
	return ratio(t.Hits+t.Doubles+2*t.Triples+3*t.HomeRuns, t.AtBats)
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func (t *Totals) add(o Totals, sign int) {
	t.Lines += sign * o.Lines
	t.PlateAppearances += sign * o.PlateAppearances
	t.AtBats += sign * o.AtBats
	t.Runs += sign * o.Runs
	t.Hits += sign * o.Hits
	t.Doubles += sign * o.Doubles
	t.Triples += sign * o.Triples
	t.HomeRuns += sign * o.HomeRuns
	t.RBI += sign * o.RBI
	t.BaseOnBalls += sign * o.BaseOnBalls
	t.IntentionalWalks += sign * o.IntentionalWalks
	t.StrikeOuts += sign * o.StrikeOuts
	t.HitByPitch += sign * o.HitByPitch
	t.SacBunts += sign * o.SacBunts
	t.SacFlies += sign * o.SacFlies
	t.StolenBases += sign * o.StolenBases
	t.CaughtStealing += sign * o.CaughtStealing
	t.GroundIntoDoublePlay += sign * o.GroundIntoDoublePlay
}

// rowTotals is one row's counts as Totals (Lines 1).
func rowTotals(r gamelog.Row) Totals {
	return Totals{Lines: 1,
		PlateAppearances: r.PlateAppearances, AtBats: r.AtBats, Runs: r.Runs, Hits: r.Hits,
		Doubles: r.Doubles, Triples: r.Triples, HomeRuns: r.HomeRuns, RBI: r.RBI,
		BaseOnBalls: r.BaseOnBalls, IntentionalWalks: r.IntentionalWalks, StrikeOuts: r.StrikeOuts,
		HitByPitch: r.HitByPitch, SacBunts: r.SacBunts, SacFlies: r.SacFlies,
		StolenBases: r.StolenBases, CaughtStealing: r.CaughtStealing, GroundIntoDoublePlay: r.GroundIntoDoublePlay}
}

// TotalsOf recomputes league totals from game-log rows as the warehouse keeps them: for each
// (player, game) only the row with the highest version counts. It never looks at the
// simulation, so tests compare it with Result.Totals.
func TotalsOf(rows []gamelog.Row) Totals {
	var t Totals
	for _, r := range latestLines(rows) {
		t.add(rowTotals(r), 1)
	}
	return t
}

// PlayerTotalsOf is TotalsOf for each player (Lines: his games), for leaderboards.
func PlayerTotalsOf(rows []gamelog.Row) map[int64]Totals {
	byPlayer := map[int64]Totals{}
	for _, r := range latestLines(rows) {
		t := byPlayer[r.PlayerID]
		t.add(rowTotals(r), 1)
		byPlayer[r.PlayerID] = t
	}
	return byPlayer
}

// latestLines keeps the highest version of each (player, game) line.
func latestLines(rows []gamelog.Row) map[lineKey]gamelog.Row {
	latest := make(map[lineKey]gamelog.Row, len(rows))
	for _, r := range rows {
		k := lineKey{r.PlayerID, r.GameID}
		if old, ok := latest[k]; !ok || r.Version > old.Version {
			latest[k] = r
		}
	}
	return latest
}

type lineKey struct {
	player int64
	game   string
}

// Result is a generated season (or its selected part).
type Result struct {
	Season int
	Teams  []Team
	// Rows in file order: day by day, each day's games in schedule order, the away team's
	// lines then the home team's in batting order; then the corrections found that day.
	Rows []gamelog.Row
	// Games played in the selection (a game is kept when one of its teams is selected).
	Games []Game
	// Transactions of the selected dates: trades, injuries and returns.
	Transactions []Transaction
	// Players are every player of the season (on a roster or in the minor-league depth).
	Players []*Player
	// Totals are the league totals of the selection, counted play by play during the
	// simulation (not from the rows) and moved by the corrections emitted.
	Totals Totals
	// RosteredPlayers is how many players were on a selected team's active roster on a
	// selected game day; Corrections how many rows are scoring changes (version 2).
	RosteredPlayers, Corrections int
}

// PlayersWithLines counts the distinct players in the rows.
func (r *Result) PlayersWithLines() int {
	seen := map[int64]bool{}
	for _, row := range r.Rows {
		seen[row.PlayerID] = true
	}
	return len(seen)
}

// Validate checks the options.
func (o Options) Validate() error {
	var errs []error
	if o.Season != 0 && (o.Season < 2023 || o.Season > 2100) {
		errs = append(errs, fmt.Errorf("season %d: the generator follows the balanced schedule in use since 2023; pick 2023-2100", o.Season))
	}
	if !o.From.IsZero() && !o.To.IsZero() && o.To.Before(o.From) {
		errs = append(errs, fmt.Errorf("to %s is before from %s", o.To.Format(time.DateOnly), o.From.Format(time.DateOnly)))
	}
	season := cmp.Or(o.Season, 2024)
	teams := Teams(season)
	for _, code := range o.Teams {
		if _, err := teamIndex(teams, code); err != nil {
			errs = append(errs, fmt.Errorf("teams: %w (the %d codes are the Stats API abbreviations, e.g. LAD, NYY, %s)", err, season, teams[12].Code))
		}
	}
	return errors.Join(errs...)
}

// correctionRate is the share of lines with a plate appearance that a scoring change
// rewrites later (about 250 in a season).
const correctionRate = 0.004

// Generate simulates the season of opts and returns the selected part.
func Generate(opts Options) (*Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	season := cmp.Or(opts.Season, 2024)
	teams := Teams(season)
	rng := rand.New(rand.NewPCG(opts.Seed, uint64(season))) //nolint:gosec // a seeded simulation must be reproducible; nothing secret is drawn from it
	games, err := schedule(season, rng)
	if err != nil {
		return nil, err
	}
	rosters, players := newPlayers(rng)
	trades := planTrades(season, rng)

	keepTeam := [30]bool{}
	for i := range keepTeam {
		keepTeam[i] = len(opts.Teams) == 0
	}
	for _, code := range opts.Teams {
		i, _ := teamIndex(teams, code) // validated above
		keepTeam[i] = true
	}
	inWindow := func(d time.Time) bool {
		return (opts.From.IsZero() || !d.Before(opts.From)) && (opts.To.IsZero() || !d.After(opts.To))
	}

	res := &Result{Season: season, Teams: teams, Players: players}
	type emitted struct {
		row  gamelog.Row
		team int
	}
	all := make([]emitted, 0, 64_000) // every original row of the season, in file order
	var dayEnd []int                  // index in all after each game day
	var dayDates []time.Time
	rostered := map[int64]bool{}
	s := &sim{rng: rng}
	var log []Transaction
	gi := 0
	for date := games[0].Date; gi < len(games); date = date.AddDate(0, 0, 1) {
		for t := range rosters {
			rosters[t].dailyMoves(rng, t, date, &log)
		}
		for len(trades) > 0 && !trades[0].date.After(date) {
			trade(&rosters, trades[0].a, trades[0].b, rng, date, &log)
			trades = trades[1:]
		}
		if gi < len(games) && games[gi].Date.Equal(date) && inWindow(date) {
			for t := range rosters {
				if keepTeam[t] {
					for _, p := range append(slices.Clone(rosters[t].hitters), rosters[t].pitchers...) {
						rostered[p.ID] = true
					}
				}
			}
		}
		for ; gi < len(games) && games[gi].Date.Equal(date); gi++ {
			g := games[gi]
			awayStart, awayBench := lineup(rng, rosters[g.Away].hitters)
			homeStart, homeBench := lineup(rng, rosters[g.Home].hitters)
			away := s.newSide(awayStart, awayBench, rosters[g.Away].pitchers)
			home := s.newSide(homeStart, homeBench, rosters[g.Home].pitchers)
			s.play(away, home)
			kept := inWindow(date) && (keepTeam[g.Home] || keepTeam[g.Away])
			if kept {
				res.Games = append(res.Games, g)
			}
			for _, x := range []struct {
				sd        *side
				team, opp int
				home      bool
			}{{away, g.Away, g.Home, false}, {home, g.Home, g.Away, true}} {
				if kept && keepTeam[x.team] {
					res.Totals.add(x.sd.tg.totals, 1)
				}
				lines := slices.Clone(x.sd.tg.lines)
				slices.SortStableFunc(lines, func(a, b *line) int { return cmp.Or(cmp.Compare(a.slot, b.slot), cmp.Compare(a.order, b.order)) })
				for _, l := range lines {
					all = append(all, emitted{row: toRow(season, g, teams[x.team].Code, teams[x.opp].Code, x.home, l), team: x.team})
				}
			}
		}
		dayEnd = append(dayEnd, len(all))
		dayDates = append(dayDates, date)
	}
	for _, tr := range log {
		if inWindow(tr.Date) && (keepTeam[tr.From] || keepTeam[tr.To]) {
			res.Transactions = append(res.Transactions, tr)
		}
	}
	res.RosteredPlayers = len(rostered)

	// Scoring changes: drawn over the whole season (so a window does not change which lines
	// are corrected), each found 1 to 3 days after its game.
	type correction struct {
		row   gamelog.Row
		team  int
		found time.Time
		delta Totals // new minus old
	}
	var corrections []correction
	for _, e := range all {
		if e.row.PlateAppearances == 0 || rng.Float64() >= correctionRate {
			continue
		}
		fixed, ok := scoringChange(rng, e.row)
		if !ok {
			continue
		}
		date, _ := time.Parse(time.DateOnly, e.row.GameDate)
		delta := rowTotals(fixed)
		delta.add(rowTotals(e.row), -1)
		corrections = append(corrections, correction{row: fixed, team: e.team, found: date.AddDate(0, 0, 1+rng.IntN(3))})
		corrections[len(corrections)-1].delta = delta
	}

	keepRow := func(r gamelog.Row, team int) bool {
		d, _ := time.Parse(time.DateOnly, r.GameDate)
		return keepTeam[team] && inWindow(d)
	}
	emitCorrections := func(until time.Time, last bool) {
		for len(corrections) > 0 && (last || !corrections[0].found.After(until)) {
			c := corrections[0]
			corrections = corrections[1:]
			if !keepRow(c.row, c.team) || (!opts.To.IsZero() && c.found.After(opts.To)) {
				continue
			}
			res.Rows = append(res.Rows, c.row)
			res.Totals.add(c.delta, 1)
			res.Corrections++
		}
	}
	slices.SortStableFunc(corrections, func(a, b correction) int { return a.found.Compare(b.found) })
	if len(opts.Teams) == 0 && opts.From.IsZero() && opts.To.IsZero() {
		res.Rows = make([]gamelog.Row, 0, len(all)+len(corrections)) // rows are large: grow once
	}
	start := 0
	for i, end := range dayEnd {
		for _, e := range all[start:end] {
			if keepRow(e.row, e.team) {
				res.Rows = append(res.Rows, e.row)
				res.Totals.Lines++
			}
		}
		start = end
		emitCorrections(dayDates[i], false)
	}
	emitCorrections(time.Time{}, true)
	return res, nil
}

// lineup picks the day's nine starters from the active hitters in rank order, each regular
// resting now and then; the others are the bench, in rank order.
func lineup(rng *rand.Rand, hitters []*Player) (starters, bench []*Player) {
	for _, p := range hitters {
		if len(starters) < regulars && rng.Float64() >= 0.07 {
			starters = append(starters, p)
		} else {
			bench = append(bench, p)
		}
	}
	for len(starters) < regulars { // more rested than the bench could cover: the first ones play
		starters, bench = append(starters, bench[0]), bench[1:]
	}
	return starters, bench
}

type plannedTrade struct {
	date time.Time
	a, b int
}

// planTrades spreads a few trades over May and June and gathers most at the deadline (July 30).
func planTrades(season int, rng *rand.Rand) []plannedTrade {
	var ts []plannedTrade
	pair := func() (int, int) {
		a := rng.IntN(30)
		b := (a + 1 + rng.IntN(29)) % 30
		return a, b
	}
	for i := 0; i < 4; i++ {
		a, b := pair()
		ts = append(ts, plannedTrade{date: time.Date(season, time.May, 1+rng.IntN(61), 0, 0, 0, 0, time.UTC), a: a, b: b})
	}
	for i := 0; i < 10; i++ {
		a, b := pair()
		ts = append(ts, plannedTrade{date: time.Date(season, time.July, 30, 0, 0, 0, 0, time.UTC), a: a, b: b})
	}
	slices.SortStableFunc(ts, func(x, y plannedTrade) int { return x.date.Compare(y.date) })
	return ts
}

func toRow(season int, g Game, team, opp string, home bool, l *line) gamelog.Row {
	tb := l.H + l.D + 2*l.T + 3*l.HR
	return gamelog.Row{
		Season: season, GameDate: g.Date.Format(time.DateOnly), GameID: g.ID, GameNumber: g.Number,
		PlayerID: l.player.ID, PlayerName: l.player.Name, Team: team, Opponent: opp, Home: home, Version: 1,
		PlateAppearances: l.PA, AtBats: l.AB, Runs: l.R, Hits: l.H, Doubles: l.D, Triples: l.T, HomeRuns: l.HR, RBI: l.RBI,
		BaseOnBalls: l.BB, IntentionalWalks: l.IBB, StrikeOuts: l.SO, HitByPitch: l.HBP, SacBunts: l.SH, SacFlies: l.SF,
		StolenBases: l.SB, CaughtStealing: l.CS, GroundIntoDoublePlay: l.GIDP, TotalBases: &tb,
	}
}

// scoringChange returns the line as an official scorer's later ruling leaves it, version 2:
// a single ruled an error, an error ruled a single, a single ruled a double, or a run batted
// in added or taken away. It reports false when the line allows none of them.
func scoringChange(rng *rand.Rand, r gamelog.Row) (gamelog.Row, bool) {
	singles := r.Hits - r.Doubles - r.Triples - r.HomeRuns
	outsInPlay := r.AtBats - r.Hits - r.StrikeOuts - r.GroundIntoDoublePlay
	type change func(*gamelog.Row)
	var options []change
	if singles > 0 {
		options = append(options, func(x *gamelog.Row) { x.Hits-- }, func(x *gamelog.Row) { x.Doubles++ })
	}
	if outsInPlay > 0 {
		options = append(options, func(x *gamelog.Row) { x.Hits++ })
	}
	if r.RBI > r.HomeRuns {
		options = append(options, func(x *gamelog.Row) { x.RBI-- })
	}
	if r.Hits > 0 {
		options = append(options, func(x *gamelog.Row) { x.RBI++ })
	}
	if len(options) == 0 {
		return r, false
	}
	fixed := r
	options[rng.IntN(len(options))](&fixed)
	tb := fixed.Hits + fixed.Doubles + 2*fixed.Triples + 3*fixed.HomeRuns
	fixed.TotalBases = &tb
	fixed.Version = 2
	return fixed, true
}
