package extract

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/gamelog"
)

// Rows maps the splits of one player's game log to game-log rows, sorted by date and game
// number. Splits of another game type than gameType are skipped: the API may add them
// (spring training, postseason) even when asked for one type.
//
// Game numbers follow the CSV convention, not the API's: 0 is a single game, 1 and 2 the
// games of a doubleheader. The API says gameNumber 1 for a single game, so a date on which
// the player has two splits is a doubleheader (numbered by the API's gameNumber), and a
// date with one split is a single game, unless the API says it is game 2 (the player sat
// out game 1). A player who played only game 1 of a doubleheader looks like a single game:
// the player's log alone cannot tell them apart.
//
// Every error names the player, the season and the game.
func Rows(playerID int64, season int, gameType string, splits []Split) ([]gamelog.Row, error) {
	type dated struct {
		row       gamelog.Row
		apiNumber int
	}
	byDate := map[string][]dated{}
	seenGames := map[int64]string{}
	for i, s := range splits {
		if s.GameType != gameType {
			continue
		}
		where := fmt.Sprintf("player %d, season %d, split %d (game %d on %s)", playerID, season, i, s.Game.GamePk, s.Date)
		row, err := rowOf(playerID, season, s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if s.Game.GameNumber != 1 && s.Game.GameNumber != 2 {
			return nil, fmt.Errorf("%s: game number %d is neither 1 nor 2", where, s.Game.GameNumber)
		}
		if date, dup := seenGames[s.Game.GamePk]; dup {
			return nil, fmt.Errorf("%s: the game is in the log twice (also on %s)", where, date)
		}
		seenGames[s.Game.GamePk] = s.Date
		byDate[row.GameDate] = append(byDate[row.GameDate], dated{row: row, apiNumber: s.Game.GameNumber})
	}

	var rows []gamelog.Row
	for date, games := range byDate {
		switch len(games) {
		case 1:
			g := games[0]
			if g.apiNumber == 2 {
				g.row.GameNumber = 2
			}
			rows = append(rows, g.row)
		case 2:
			if games[0].apiNumber == games[1].apiNumber {
				return nil, fmt.Errorf("player %d, season %d: two games on %s (%s and %s) both have game number %d",
					playerID, season, date, games[0].row.GameID, games[1].row.GameID, games[0].apiNumber)
			}
			for _, g := range games {
				g.row.GameNumber = g.apiNumber
				rows = append(rows, g.row)
			}
		default:
			ids := make([]string, len(games))
			for i, g := range games {
				ids[i] = g.row.GameID
			}
			return nil, fmt.Errorf("player %d, season %d: %d games on %s (%s): at most a doubleheader is possible",
				playerID, season, len(games), date, strings.Join(ids, ", "))
		}
	}
	SortRows(rows)
	return rows, nil
}

// SortRows orders rows by date, game number, then player id, game id: the order of the file.
func SortRows(rows []gamelog.Row) {
	slices.SortStableFunc(rows, func(a, b gamelog.Row) int {
		return cmp.Or(
			cmp.Compare(a.GameDate, b.GameDate),
			cmp.Compare(a.GameNumber, b.GameNumber),
			cmp.Compare(a.PlayerID, b.PlayerID),
			cmp.Compare(a.GameID, b.GameID),
		)
	})
}

// rowOf maps one split; GameNumber is set by the caller, which sees the whole date.
func rowOf(playerID int64, season int, s Split) (gamelog.Row, error) {
	splitSeason, err := strconv.Atoi(s.Season)
	if err != nil {
		return gamelog.Row{}, fmt.Errorf("season %q is not a year", s.Season)
	}
	if splitSeason != season {
		return gamelog.Row{}, fmt.Errorf("the split is of season %d, not the season asked for", splitSeason)
	}
	date, err := time.Parse(time.DateOnly, s.Date)
	if err != nil {
		return gamelog.Row{}, fmt.Errorf("date %q is not a date (YYYY-MM-DD)", s.Date)
	}
	if date.Year() != season {
		return gamelog.Row{}, fmt.Errorf("date %s is not in season %d", s.Date, season)
	}
	if s.Game.GamePk <= 0 {
		return gamelog.Row{}, fmt.Errorf("game.gamePk is missing")
	}
	if s.Player.ID != playerID {
		return gamelog.Row{}, fmt.Errorf("the split is of player %d, not the player asked for", s.Player.ID)
	}
	name := strings.TrimSpace(s.Player.FullName)
	if name == "" {
		return gamelog.Row{}, fmt.Errorf("player.fullName is missing")
	}
	if s.IsHome == nil {
		return gamelog.Row{}, fmt.Errorf("isHome is missing")
	}
	team, err := clubAbbreviation(s.Team, season)
	if err != nil {
		return gamelog.Row{}, fmt.Errorf("team: %w", err)
	}
	opponent, err := clubAbbreviation(s.Opponent, season)
	if err != nil {
		return gamelog.Row{}, fmt.Errorf("opponent: %w", err)
	}
	row := gamelog.Row{
		Season:     season,
		GameDate:   s.Date,
		GameID:     strconv.FormatInt(s.Game.GamePk, 10),
		PlayerID:   playerID,
		PlayerName: name,
		Team:       team,
		Opponent:   opponent,
		Home:       *s.IsHome,
		Version:    1,
	}
	if err := setCounts(&row, s.Stat); err != nil {
		return gamelog.Row{}, err
	}
	return row, nil
}

// setCounts copies the counts of a hitting stat line (a game-log split's or a box score's)
// into row. A missing count is an error, not a zero; total bases are optional.
func setCounts(row *gamelog.Row, st HittingStat) error {
	counts := []struct {
		name string
		from *int
		to   *int
	}{
		{"plateAppearances", st.PlateAppearances, &row.PlateAppearances},
		{"atBats", st.AtBats, &row.AtBats},
		{"runs", st.Runs, &row.Runs},
		{"hits", st.Hits, &row.Hits},
		{"doubles", st.Doubles, &row.Doubles},
		{"triples", st.Triples, &row.Triples},
		{"homeRuns", st.HomeRuns, &row.HomeRuns},
		{"rbi", st.RBI, &row.RBI},
		{"baseOnBalls", st.BaseOnBalls, &row.BaseOnBalls},
		{"intentionalWalks", st.IntentionalWalks, &row.IntentionalWalks},
		{"strikeOuts", st.StrikeOuts, &row.StrikeOuts},
		{"hitByPitch", st.HitByPitch, &row.HitByPitch},
		{"sacBunts", st.SacBunts, &row.SacBunts},
		{"sacFlies", st.SacFlies, &row.SacFlies},
		{"stolenBases", st.StolenBases, &row.StolenBases},
		{"caughtStealing", st.CaughtStealing, &row.CaughtStealing},
		{"groundIntoDoublePlay", st.GroundIntoDoublePlay, &row.GroundIntoDoublePlay},
	}
	for _, c := range counts {
		switch {
		case c.from == nil:
			return fmt.Errorf("stat.%s is missing: a missing count is an error, not a zero", c.name)
		case *c.from < 0:
			return fmt.Errorf("stat.%s is negative (%d)", c.name, *c.from)
		}
		*c.to = *c.from
	}
	row.TotalBases = nil
	if tb := st.TotalBases; tb != nil {
		if *tb < 0 {
			return fmt.Errorf("stat.totalBases is negative (%d)", *tb)
		}
		v := *tb
		row.TotalBases = &v
	}
	return nil
}
