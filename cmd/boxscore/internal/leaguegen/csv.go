package leaguegen

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/gamelog"
)

// Header is the generated file's header: gamelog.Header and a version column, which
// gamelog.Reader reads (1 when absent) but gamelog.Writer does not write. Corrections need
// it: a scoring change is the same (player, game) line again with a higher version.
var Header = append(append([]string(nil), gamelog.Header...), "version")

// formatters format each column of Header from a row.
var formatters = map[string]func(r *gamelog.Row) string{
	"season":                  func(r *gamelog.Row) string { return strconv.Itoa(r.Season) },
	"game_date":               func(r *gamelog.Row) string { return r.GameDate },
	"game_id":                 func(r *gamelog.Row) string { return r.GameID },
	"game_number":             func(r *gamelog.Row) string { return strconv.Itoa(r.GameNumber) },
	"player_id":               func(r *gamelog.Row) string { return strconv.FormatInt(r.PlayerID, 10) },
	"player_name":             func(r *gamelog.Row) string { return r.PlayerName },
	"team":                    func(r *gamelog.Row) string { return r.Team },
	"opponent":                func(r *gamelog.Row) string { return r.Opponent },
	"home_away":               homeAway,
	"plate_appearances":       func(r *gamelog.Row) string { return strconv.Itoa(r.PlateAppearances) },
	"at_bats":                 func(r *gamelog.Row) string { return strconv.Itoa(r.AtBats) },
	"runs":                    func(r *gamelog.Row) string { return strconv.Itoa(r.Runs) },
	"hits":                    func(r *gamelog.Row) string { return strconv.Itoa(r.Hits) },
	"doubles":                 func(r *gamelog.Row) string { return strconv.Itoa(r.Doubles) },
	"triples":                 func(r *gamelog.Row) string { return strconv.Itoa(r.Triples) },
	"home_runs":               func(r *gamelog.Row) string { return strconv.Itoa(r.HomeRuns) },
	"rbi":                     func(r *gamelog.Row) string { return strconv.Itoa(r.RBI) },
	"base_on_balls":           func(r *gamelog.Row) string { return strconv.Itoa(r.BaseOnBalls) },
	"intentional_walks":       func(r *gamelog.Row) string { return strconv.Itoa(r.IntentionalWalks) },
	"strike_outs":             func(r *gamelog.Row) string { return strconv.Itoa(r.StrikeOuts) },
	"hit_by_pitch":            func(r *gamelog.Row) string { return strconv.Itoa(r.HitByPitch) },
	"sac_bunts":               func(r *gamelog.Row) string { return strconv.Itoa(r.SacBunts) },
	"sac_flies":               func(r *gamelog.Row) string { return strconv.Itoa(r.SacFlies) },
	"stolen_bases":            func(r *gamelog.Row) string { return strconv.Itoa(r.StolenBases) },
	"caught_stealing":         func(r *gamelog.Row) string { return strconv.Itoa(r.CaughtStealing) },
	"ground_into_double_play": func(r *gamelog.Row) string { return strconv.Itoa(r.GroundIntoDoublePlay) },
	"total_bases": func(r *gamelog.Row) string {
		if r.TotalBases == nil {
			return ""
		}
		return strconv.Itoa(*r.TotalBases)
	},
	"version": func(r *gamelog.Row) string { return strconv.FormatInt(max(r.Version, 1), 10) },
}

func homeAway(r *gamelog.Row) string {
	if r.Home {
		return "home"
	}
	return "away"
}

// WriteCSV writes rows as a game-log CSV with Header.
func WriteCSV(w io.Writer, rows []gamelog.Row) error {
	format := make([]func(*gamelog.Row) string, len(Header))
	for i, name := range Header {
		f, ok := formatters[name]
		if !ok {
			return fmt.Errorf("write game log: no formatter for column %q (package gamelog has a new column)", name)
		}
		format[i] = f
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(Header); err != nil {
		return fmt.Errorf("write game log header: %w", err)
	}
	record := make([]string, len(Header))
	for i := range rows {
		for j, f := range format {
			record[j] = f(&rows[i])
		}
		if err := cw.Write(record); err != nil {
			return fmt.Errorf("write game log row %d: %w", i+1, err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write game log: %w", err)
	}
	return nil
}
