package leaguegen

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Game is one scheduled game that was played.
type Game struct {
	ID     string    // Retrosheet style: home team's code, YYYYMMDD, game number (0 single, 1 or 2)
	Date   time.Time // UTC midnight
	Number int       // 0 single game, 1 or 2 in a doubleheader
	Home   int       // team index in Teams(season)
	Away   int
	// Postponed is set on the first game of a doubleheader, the make-up of a game rained out
	// the day before: the date it was first scheduled on.
	Postponed time.Time
}

// series is a set of consecutive games between two teams at one park.
type series struct {
	home, away, length int
}

// round is a block of days in which every team plays at most one series: the opening
// Thursday to Sunday, then Monday to Thursday and Friday to Sunday of every week.
type round struct {
	start time.Time
	days  int
}

// openingDay is the last Thursday of March, as recent seasons opened.
func openingDay(season int) time.Time {
	d := time.Date(season, time.March, 31, 0, 0, 0, 0, time.UTC)
	for d.Weekday() != time.Thursday {
		d = d.AddDate(0, 0, -1)
	}
	return d
}

// rounds returns the first n game rounds of a season, leaving out the All-Star break (the
// Monday to Thursday of the week whose Monday falls on July 11-17).
func rounds(season, n int) []round {
	rs := []round{{start: openingDay(season), days: 4}}
	monday := openingDay(season).AddDate(0, 0, 4)
	for len(rs) < n {
		if !(monday.Month() == time.July && monday.Day() >= 11 && monday.Day() <= 17) {
			rs = append(rs, round{start: monday, days: 4})
		}
		if len(rs) < n {
			rs = append(rs, round{start: monday.AddDate(0, 0, 4), days: 3})
		}
		monday = monday.AddDate(0, 0, 7)
	}
	return rs
}

// seriesPlan returns every series of the season, with MLB's balanced schedule since 2023:
// 13 games against each division rival (series of 3, 3, 3 and 4; a team hosts 7 against two
// rivals and 6 against the other two), 6 or 7 against each other team of its league (7
// against two teams of each other division, hosting the 4-game series of one of them), 4
// against its natural interleague rival (2 at each park) and 3 against each of the other
// 14 teams of the other league (hosting 7 of them). Every team plays 162 games, 81 at home,
// in 52 series.
func seriesPlan() []series {
	var plan []series
	add := func(home, away int, lengths ...int) {
		for _, l := range lengths {
			plan = append(plan, series{home: home, away: away, length: l})
		}
	}
	for league := 0; league < 2; league++ {
		base := league * 15
		for x := 0; x < 15; x++ {
			for y := x + 1; y < 15; y++ {
				dx, dy, px, py := x/5, y/5, x%5, y%5
				u, v := base+x, base+y
				diff := ((py-px)%5 + 5) % 5
				switch {
				case dx == dy && (diff == 1 || diff == 2):
					add(u, v, 3, 4)
					add(v, u, 3, 3)
				case dx == dy:
					add(u, v, 3, 3)
					add(v, u, 3, 4)
				case diff == 0:
					add(u, v, 4)
					add(v, u, 3)
				case diff == 1:
					add(u, v, 3)
					add(v, u, 4)
				default:
					add(u, v, 3)
					add(v, u, 3)
				}
			}
		}
	}
	for a := 0; a < 15; a++ {
		for n := 0; n < 15; n++ {
			al, nl := a, 15+n
			switch d := ((n-a)%15 + 15) % 15; {
			case d == 0:
				add(al, nl, 2)
				add(nl, al, 2)
			case d <= 7:
				add(al, nl, 3)
			default:
				add(nl, al, 3)
			}
		}
	}
	return plan
}

// scheduler places the series plan into rounds, one matching of teams per round.
type scheduler struct {
	rng       *rand.Rand
	remaining [30][30][]series // [min][max] team index: series left between the two
	left      [30]int          // series left per team
	lastFoe   [30]int          // opponent in the previous round, -1 none
}

// schedule builds the season's games. It fails only if the plan does not fit in 60 rounds
// (late October); the tests show every seed tried ends by early October.
func schedule(season int, rng *rand.Rand) ([]Game, error) {
	s := &scheduler{rng: rng}
	total := 0
	for _, sr := range seriesPlan() {
		u, v := min(sr.home, sr.away), max(sr.home, sr.away)
		s.remaining[u][v] = append(s.remaining[u][v], sr)
		s.left[sr.home]++
		s.left[sr.away]++
		total++
	}
	for i := range s.lastFoe {
		s.lastFoe[i] = -1
	}
	const maxRounds = 60
	rs := rounds(season, maxRounds)
	teams := Teams(season)
	var games []Game
	for _, r := range rs {
		if total == 0 {
			break
		}
		pairs := s.matchRound(r.days)
		var foe [30]int
		for i := range foe {
			foe[i] = -1
		}
		for _, p := range pairs {
			sr := s.take(p[0], p[1], r.days)
			total--
			foe[sr.home], foe[sr.away] = sr.away, sr.home
			games = append(games, s.placeSeries(teams, sr, r)...)
		}
		s.lastFoe = foe
	}
	if total > 0 {
		return nil, fmt.Errorf("schedule: %d series could not be placed in %d rounds", total, maxRounds)
	}
	slices.SortFunc(games, func(a, b Game) int {
		return cmp.Or(a.Date.Compare(b.Date), cmp.Compare(a.Home, b.Home), cmp.Compare(a.Number, b.Number))
	})
	return games, nil
}

// candidates returns the teams v that u may meet in a round of the given days, best first.
func (s *scheduler) candidates(u int, days int, matched *[30]bool) []int {
	type cand struct {
		v     int
		score float64
	}
	var cs []cand
	for v := 0; v < 30; v++ {
		if v == u || matched[v] {
			continue
		}
		a, b := min(u, v), max(u, v)
		fits, has4 := false, false
		for _, sr := range s.remaining[a][b] {
			if sr.length <= days {
				fits = true
			}
			if sr.length == 4 {
				has4 = true
			}
		}
		if !fits || s.lastFoe[u] == v {
			// Never the same opponent twice in a row: two series back to back at one park
			// would be one long series.
			continue
		}
		// More series left between two teams first, so the plan's remainder stays even;
		// a 4-game series where a round has room for it.
		score := float64(len(s.remaining[a][b]))*4 + s.rng.Float64()*3
		if days == 4 && has4 {
			score += 3
		}
		cs = append(cs, cand{v, score})
	}
	slices.SortStableFunc(cs, func(x, y cand) int { return cmp.Compare(y.score, x.score) })
	out := make([]int, len(cs))
	for i, c := range cs {
		out[i] = c.v
	}
	return out
}

// matchRound finds a matching of the teams with series left that leaves as few of them
// idle as it can (a bounded depth-first search; none idle when the round allows it).
func (s *scheduler) matchRound(days int) [][2]int {
	var matched [30]bool
	active := 0
	for t := 0; t < 30; t++ {
		if s.left[t] == 0 {
			matched[t] = true // nothing left to play: out of the search
		} else {
			active++
		}
	}
	var best, cur [][2]int
	bestIdle := active + 1
	budget := 20000
	var dfs func(idle int) bool
	dfs = func(idle int) bool {
		budget--
		// The team with the fewest possible opponents goes first: it is the one that fails.
		pick, pickCands := -1, []int(nil)
		for t := 0; t < 30; t++ {
			if matched[t] {
				continue
			}
			c := s.candidates(t, days, &matched)
			if pick < 0 || len(c) < len(pickCands) {
				pick, pickCands = t, c
			}
		}
		if pick < 0 {
			if idle < bestIdle {
				bestIdle, best = idle, slices.Clone(cur)
			}
			return idle <= active%2
		}
		matched[pick] = true
		for _, v := range pickCands {
			if budget <= 0 {
				break
			}
			matched[v] = true
			cur = append(cur, [2]int{pick, v})
			if dfs(idle) {
				return true
			}
			cur = cur[:len(cur)-1]
			matched[v] = false
		}
		// Idle this round: allowed, but only as the last resort.
		if budget > 0 && idle+1 < bestIdle {
			if dfs(idle + 1) {
				return true
			}
		}
		matched[pick] = false
		return false
	}
	dfs(0)
	return best
}

// take removes and returns one series between u and v that fits the round.
func (s *scheduler) take(u, v, days int) series {
	a, b := min(u, v), max(u, v)
	list := s.remaining[a][b]
	idx := -1
	for i, sr := range list {
		if sr.length > days {
			continue
		}
		if idx < 0 || (days == 4 && sr.length == 4 && list[idx].length != 4) {
			idx = i
		}
	}
	if days != 4 || list[idx].length != 4 {
		// Any fitting series, picked at random so hosts alternate over the season.
		var fit []int
		for i, sr := range list {
			if sr.length <= days {
				fit = append(fit, i)
			}
		}
		idx = fit[s.rng.IntN(len(fit))]
	}
	sr := list[idx]
	s.remaining[a][b] = slices.Delete(list, idx, idx+1)
	s.left[u]--
	s.left[v]--
	return sr
}

// rainoutRate is the share of games rained out and made up as the second game of a
// doubleheader the next day of the same series (about 20 a season, as in recent years).
const rainoutRate = 0.009

// placeSeries lays a series' games on the round's days: a 4-game series fills a 4-day round,
// a shorter one leaves an off day (Monday or Thursday), and a 2-game series plays the middle.
func (s *scheduler) placeSeries(teams []Team, sr series, r round) []Game {
	offset := 0
	switch {
	case sr.length == r.days:
	case sr.length == 2:
		offset = 1
	case s.rng.IntN(2) == 1:
		offset = r.days - sr.length
	}
	var games []Game
	for i := 0; i < sr.length; i++ {
		date := r.start.AddDate(0, 0, offset+i)
		last := len(games) - 1
		if last >= 0 && games[last].Number == -1 {
			// Yesterday's game was rained out: today is a doubleheader.
			games[last].Number, games[last].Date = 1, date
			games[last].ID = gameID(teams[sr.home], date, 1)
			g := Game{ID: gameID(teams[sr.home], date, 2), Date: date, Number: 2, Home: sr.home, Away: sr.away, Postponed: date.AddDate(0, 0, -1)}
			games = append(games, g)
			continue
		}
		g := Game{ID: gameID(teams[sr.home], date, 0), Date: date, Home: sr.home, Away: sr.away}
		if i < sr.length-1 && s.rng.Float64() < rainoutRate {
			g.Number = -1 // rained out; rescheduled on the next day above
		}
		games = append(games, g)
	}
	// The second game of a doubleheader carries the rained-out game's original date; swap so
	// game 1 is the make-up, as clubs usually schedule it.
	for i := range games {
		if games[i].Number == 1 {
			games[i].Postponed, games[i+1].Postponed = games[i+1].Postponed, time.Time{}
		}
	}
	return games
}

func gameID(home Team, date time.Time, number int) string {
	return fmt.Sprintf("%s%s%d", home.Retro, date.Format("20060102"), number)
}
