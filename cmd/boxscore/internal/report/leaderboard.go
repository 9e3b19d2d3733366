package report

import (
	"cmp"
	"slices"
	"sort"
	"strings"

	"github.com/boxscore-dev/boxscore/pkg/seasonview"
)

// stat is a statistic a leaderboard can be sorted by: its value for a player, and whether
// it is a rate (qualified players only) or a count.
type stat struct {
	label string
	rate  bool
	value func(PlayerSeason) int
}

// rateValue is a rate's thousandths, or -1 when it is undefined (no at bat): last.
func rateValue(get func(PlayerSeason) Rate) func(PlayerSeason) int {
	return func(p PlayerSeason) int {
		r := get(p)
		if !r.Valid {
			return -1
		}
		return r.Thousandths
	}
}

// sortKeys are the statistics of --sort, by their flag spelling.
var sortKeys = map[string]stat{
	"ops": {"OPS", true, rateValue(func(p PlayerSeason) Rate { return p.OPS })},
	"avg": {"AVG", true, rateValue(func(p PlayerSeason) Rate { return p.AVG })},
	"obp": {"OBP", true, rateValue(func(p PlayerSeason) Rate { return p.OBP })},
	"slg": {"SLG", true, rateValue(func(p PlayerSeason) Rate { return p.SLG })},
	"hr":  {"HR", false, func(p PlayerSeason) int { return p.HomeRuns }},
	"rbi": {"RBI", false, func(p PlayerSeason) int { return p.RBI }},
	"h":   {"H", false, func(p PlayerSeason) int { return p.Hits }},
	"sb":  {"SB", false, func(p PlayerSeason) int { return p.StolenBases }},
	"r":   {"R", false, func(p PlayerSeason) int { return p.Runs }},
	"bb":  {"BB", false, func(p PlayerSeason) int { return p.BaseOnBalls }},
	"so":  {"SO", false, func(p PlayerSeason) int { return p.StrikeOuts }},
	"2b":  {"2B", false, func(p PlayerSeason) int { return p.Doubles }},
	"3b":  {"3B", false, func(p PlayerSeason) int { return p.Triples }},
	"tb":  {"TB", false, func(p PlayerSeason) int { return p.TotalBases }},
	"g":   {"G", false, func(p PlayerSeason) int { return p.Games }},
	"pa":  {"PA", false, func(p PlayerSeason) int { return p.PlateAppearances }},
}

// SortKeys lists --sort's statistics, in flag spelling, sorted.
func SortKeys() []string {
	keys := make([]string, 0, len(sortKeys))
	for k := range sortKeys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// PlateAppearancesPerTeamGame is the qualification rule for rate statistics, in tenths: a
// batter qualifies with 3.1 plate appearances per game his team played.
const PlateAppearancesPerTeamGame = 31

// QualifyingPA is the plate appearances a batter needs when his team played teamGames
// games: 3.1 per game, rounded to the nearest whole number (halves up), as MLB does (502
// for 162 games).
func QualifyingPA(teamGames int) int {
	return (PlateAppearancesPerTeamGame*teamGames + 5) / 10
}

// Ranking says how a leaderboard is made from the league's lines.
type Ranking struct {
	// Sort is a key of sortKeys.
	Sort string
	// MinPA, when not negative, replaces the qualification rule, for every statistic.
	MinPA int
	// Limit keeps the first Limit players (ties at the cut are cut too); 0 keeps all.
	Limit int
}

// RankedBoard is a leaderboard and how it was made.
type RankedBoard struct {
	Rows []PlayerSeason
	// Qualified is how many players passed the qualification (before Limit), of Players.
	Qualified, Players int
	// EstimatedTeams are the teams whose games were not in the warehouse (no line of their
	// opponents): their count is the most games one of their players played.
	EstimatedTeams []string
}

// Rank makes the leaderboard: rate statistics keep the qualified players (QualifyingPA of
// their team's games, or r.MinPA), counting statistics every player unless r.MinPA is set;
// best first, ties to more plate appearances, then the name, then the id.
func Rank(lines []seasonview.LeagueLine, r Ranking) (RankedBoard, error) {
	st, ok := sortKeys[r.Sort]
	if !ok {
		return RankedBoard{}, errUnknownSort(r.Sort)
	}
	teamGames := map[string]int{}
	mostPlayed := map[string]int{}
	for _, l := range lines {
		teamGames[l.Team] = max(teamGames[l.Team], l.TeamGames)
		mostPlayed[l.Team] = max(mostPlayed[l.Team], l.Games)
	}
	board := RankedBoard{Players: len(lines)}
	for team, games := range teamGames {
		if games == 0 && team != "" {
			teamGames[team] = mostPlayed[team]
			board.EstimatedTeams = append(board.EstimatedTeams, team)
		}
	}
	slices.Sort(board.EstimatedTeams)
	for _, l := range lines {
		switch {
		case r.MinPA >= 0:
			if l.PlateAppearances < r.MinPA {
				continue
			}
		case st.rate:
			games := teamGames[l.Team]
			if l.Team == "" { // no dim_player row: the player's own games stand in
				games = l.Games
			}
			if l.PlateAppearances < QualifyingPA(games) {
				continue
			}
		}
		board.Rows = append(board.Rows, l.PlayerSeason)
	}
	board.Qualified = len(board.Rows)
	slices.SortFunc(board.Rows, func(a, b PlayerSeason) int {
		return cmp.Or(
			cmp.Compare(st.value(b), st.value(a)),
			cmp.Compare(b.PlateAppearances, a.PlateAppearances),
			strings.Compare(a.Name, b.Name),
			cmp.Compare(a.ID, b.ID),
		)
	})
	if r.Limit > 0 && len(board.Rows) > r.Limit {
		board.Rows = board.Rows[:r.Limit]
	}
	return board, nil
}

type errUnknownSort string

func (e errUnknownSort) Error() string {
	return "report: unknown statistic " + string(e) + " to sort by (want one of " + strings.Join(SortKeys(), ", ") + ")"
}
