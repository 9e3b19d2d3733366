// Package gamelog reads and writes player game logs as CSV: one batting line per player per
// game, with the columns of the MLB Stats API game log in snake_case. It is the format the
// extractor writes, the replay reads, and the demo season ships in.
package gamelog

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// Row is one batting line.
type Row struct {
	Season     int
	GameDate   string // YYYY-MM-DD
	GameID     string
	GameNumber int // 0 single game, 1 or 2 in a doubleheader
	PlayerID   int64
	PlayerName string
	Team       string
	Opponent   string
	Home       bool
	Version    int64 // 1 unless the file has a version column

	PlateAppearances, AtBats, Runs, Hits, Doubles, Triples, HomeRuns, RBI     int
	BaseOnBalls, IntentionalWalks, StrikeOuts, HitByPitch, SacBunts, SacFlies int
	StolenBases, CaughtStealing, GroundIntoDoublePlay                         int
	TotalBases                                                                *int // optional column
}

// column binds a CSV column to a Row field.
type column struct {
	name     string
	optional bool
	parse    func(r *Row, v string) error
	format   func(r *Row) string
}

func intField(get func(r *Row) *int) (func(*Row, string) error, func(*Row) string) {
	return func(r *Row, v string) error {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("%q is not a whole number", v)
			}
			if n < 0 {
				return fmt.Errorf("%d is negative", n)
			}
			*get(r) = n
			return nil
		}, func(r *Row) string {
			return strconv.Itoa(*get(r))
		}
}

func counting(name string, get func(r *Row) *int) column {
	p, f := intField(get)
	return column{name: name, parse: p, format: f}
}

// columns in file order.
var columns = []column{
	counting("season", func(r *Row) *int { return &r.Season }),
	{name: "game_date", parse: func(r *Row, v string) error {
		v = strings.TrimSpace(v)
		if _, err := time.Parse(time.DateOnly, v); err != nil {
			return fmt.Errorf("%q is not a date (YYYY-MM-DD)", v)
		}
		r.GameDate = v
		return nil
	}, format: func(r *Row) string { return r.GameDate }},
	{name: "game_id", parse: func(r *Row, v string) error { return nonEmpty(&r.GameID, v) }, format: func(r *Row) string { return r.GameID }},
	counting("game_number", func(r *Row) *int { return &r.GameNumber }),
	{name: "player_id", parse: func(r *Row, v string) error {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("%q is not a player id (a positive whole number)", v)
		}
		r.PlayerID = n
		return nil
	}, format: func(r *Row) string { return strconv.FormatInt(r.PlayerID, 10) }},
	{name: "player_name", parse: func(r *Row, v string) error { return nonEmpty(&r.PlayerName, v) }, format: func(r *Row) string { return r.PlayerName }},
	{name: "team", parse: func(r *Row, v string) error { return nonEmpty(&r.Team, v) }, format: func(r *Row) string { return r.Team }},
	{name: "opponent", parse: func(r *Row, v string) error { return nonEmpty(&r.Opponent, v) }, format: func(r *Row) string { return r.Opponent }},
	{name: "home_away", parse: func(r *Row, v string) error {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "home":
			r.Home = true
		case "away":
			r.Home = false
		default:
			return fmt.Errorf("%q is neither home nor away", v)
		}
		return nil
	}, format: func(r *Row) string {
		if r.Home {
			return "home"
		}
		return "away"
	}},
	counting("plate_appearances", func(r *Row) *int { return &r.PlateAppearances }),
	counting("at_bats", func(r *Row) *int { return &r.AtBats }),
	counting("runs", func(r *Row) *int { return &r.Runs }),
	counting("hits", func(r *Row) *int { return &r.Hits }),
	counting("doubles", func(r *Row) *int { return &r.Doubles }),
	counting("triples", func(r *Row) *int { return &r.Triples }),
	counting("home_runs", func(r *Row) *int { return &r.HomeRuns }),
	counting("rbi", func(r *Row) *int { return &r.RBI }),
	counting("base_on_balls", func(r *Row) *int { return &r.BaseOnBalls }),
	counting("intentional_walks", func(r *Row) *int { return &r.IntentionalWalks }),
	counting("strike_outs", func(r *Row) *int { return &r.StrikeOuts }),
	counting("hit_by_pitch", func(r *Row) *int { return &r.HitByPitch }),
	counting("sac_bunts", func(r *Row) *int { return &r.SacBunts }),
	counting("sac_flies", func(r *Row) *int { return &r.SacFlies }),
	counting("stolen_bases", func(r *Row) *int { return &r.StolenBases }),
	counting("caught_stealing", func(r *Row) *int { return &r.CaughtStealing }),
	counting("ground_into_double_play", func(r *Row) *int { return &r.GroundIntoDoublePlay }),
	{name: "total_bases", optional: true, parse: func(r *Row, v string) error {
		if strings.TrimSpace(v) == "" {
			r.TotalBases = nil
			return nil
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			return fmt.Errorf("%q is not a whole number ≥ 0", v)
		}
		r.TotalBases = &n
		return nil
	}, format: func(r *Row) string {
		if r.TotalBases == nil {
			return ""
		}
		return strconv.Itoa(*r.TotalBases)
	}},
	{name: "version", optional: true, parse: func(r *Row, v string) error {
		if strings.TrimSpace(v) == "" {
			r.Version = 1
			return nil
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 1 {
			return fmt.Errorf("%q is not a version (a whole number ≥ 1)", v)
		}
		r.Version = n
		return nil
	}, format: func(r *Row) string { return strconv.FormatInt(r.Version, 10) }},
}

func nonEmpty(dst *string, v string) error {
	v = strings.TrimSpace(v)
	if v == "" {
		return errors.New("is empty")
	}
	*dst = v
	return nil
}

// Header is the column list a Writer writes: every column but version. Extracted logs
// are version 1, and a fixed header lets files be concatenated.
var Header = func() []string {
	var h []string
	for _, c := range columns {
		if c.name != "version" {
			h = append(h, c.name)
		}
	}
	return h
}()

// RowError is a malformed row: where it is and what is wrong. Reading can go on after it.
type RowError struct {
	Line   int    // 1-based line number in the file
	Column string // column name, empty when the row as a whole is wrong
	Err    error
}

func (e *RowError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("line %d, column %s: %v", e.Line, e.Column, e.Err)
}

func (e *RowError) Unwrap() error { return e.Err }

// Reader reads rows from a game-log CSV with a header line. Columns may come in any order;
// unknown columns are ignored; total_bases and version are optional.
type Reader struct {
	csv   *csv.Reader
	index []int // position of each entry of columns in the file, -1 when absent
}

// NewReader reads the header and checks that every required column is there.
func NewReader(r io.Reader) (*Reader, error) {
	c := csv.NewReader(r)
	c.FieldsPerRecord = -1 // checked per row, so one short row is an error for that row only
	c.ReuseRecord = true
	header, err := c.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("game log is empty: no header line")
		}
		return nil, fmt.Errorf("header: %w", err)
	}
	pos := map[string]int{}
	for i, name := range header {
		pos[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(name, "\ufeff")))] = i
	}
	rd := &Reader{csv: c, index: make([]int, len(columns))}
	var missing []string
	for i, col := range columns {
		p, ok := pos[col.name]
		if !ok {
			p = -1
			if !col.optional {
				missing = append(missing, col.name)
			}
		}
		rd.index[i] = p
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("header: missing column(s) %s", strings.Join(missing, ", "))
	}
	return rd, nil
}

// Next returns the next row, io.EOF at the end, or a *RowError for a malformed row (call
// Next again to go on with the following rows).
func (r *Reader) Next() (Row, error) {
	record, err := r.csv.Read()
	line, _ := r.csv.FieldPos(0)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Row{}, io.EOF
		}
		var parseErr *csv.ParseError
		if errors.As(err, &parseErr) {
			return Row{}, &RowError{Line: parseErr.Line, Err: parseErr.Err}
		}
		return Row{}, fmt.Errorf("read game log: %w", err)
	}
	row := Row{Version: 1}
	for i, col := range columns {
		p := r.index[i]
		if p < 0 {
			continue
		}
		if p >= len(record) {
			return Row{}, &RowError{Line: line, Column: col.name, Err: fmt.Errorf("missing: the row has %d fields", len(record))}
		}
		if err := col.parse(&row, record[p]); err != nil {
			return Row{}, &RowError{Line: line, Column: col.name, Err: err}
		}
	}
	return row, nil
}

// Writer writes rows as game-log CSV.
type Writer struct {
	csv         *csv.Writer
	wroteHeader bool
}

// NewWriter returns a writer; the header is written with the first row (or on Flush).
func NewWriter(w io.Writer) *Writer { return &Writer{csv: csv.NewWriter(w)} }

// Write writes one row.
func (w *Writer) Write(r Row) error {
	if err := w.header(); err != nil {
		return err
	}
	record := make([]string, 0, len(Header))
	for _, c := range columns {
		if c.name != "version" {
			record = append(record, c.format(&r))
		}
	}
	return w.csv.Write(record)
}

func (w *Writer) header() error {
	if w.wroteHeader {
		return nil
	}
	w.wroteHeader = true
	return w.csv.Write(Header)
}

// Flush writes what is buffered and reports any write error.
func (w *Writer) Flush() error {
	if err := w.header(); err != nil {
		return err
	}
	w.csv.Flush()
	return w.csv.Error()
}

// Event turns the row into a stat event whose id is derived from (player, game, version),
// so that sending the same file twice, or resuming after a crash, adds nothing twice.
func (r Row) Event(source string) *statsv1.StatEvent {
	i32 := func(v int) *int32 { n := int32(v); return &n }
	homeAway := statsv1.HomeAway_HOME_AWAY_AWAY
	if r.Home {
		homeAway = statsv1.HomeAway_HOME_AWAY_HOME
	}
	ev := &statsv1.StatEvent{
		EventId: statevent.DeterministicEventID(r.PlayerID, r.GameID, r.Version),
		Player:  &statsv1.Player{MlbId: r.PlayerID, Name: r.PlayerName, Team: r.Team},
		Game: &statsv1.Game{GameId: r.GameID, Date: r.GameDate, GameNumber: int32(r.GameNumber),
			Opponent: r.Opponent, HomeAway: homeAway, Season: int32(r.Season)},
		Batting: &statsv1.BattingLine{
			PlateAppearances: i32(r.PlateAppearances), AtBats: i32(r.AtBats), Runs: i32(r.Runs), Hits: i32(r.Hits),
			Doubles: i32(r.Doubles), Triples: i32(r.Triples), HomeRuns: i32(r.HomeRuns), Rbi: i32(r.RBI),
			BaseOnBalls: i32(r.BaseOnBalls), IntentionalWalks: i32(r.IntentionalWalks), StrikeOuts: i32(r.StrikeOuts),
			HitByPitch: i32(r.HitByPitch), SacBunts: i32(r.SacBunts), SacFlies: i32(r.SacFlies),
			StolenBases: i32(r.StolenBases), CaughtStealing: i32(r.CaughtStealing),
			GroundIntoDoublePlay: i32(r.GroundIntoDoublePlay),
		},
		Version: r.Version,
		Source:  source,
	}
	if r.TotalBases != nil {
		ev.Batting.TotalBases = i32(*r.TotalBases)
	}
	return ev
}
