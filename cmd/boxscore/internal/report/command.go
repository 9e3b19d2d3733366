package report

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/boxscore-dev/boxscore/pkg/seasonview"
)

// Command is the `report` CLI command (kong): it prints a season's league batting
// leaderboard from the warehouse (PostgreSQL or Amazon Redshift, see connect), over a date
// range and for one team if asked, and writes the cumulative OPS chart of chosen players
// (by default the leaderboard's first five).
type Command struct {
	DatabaseURL string  `name:"database-url" env:"BOXSCORE_DATABASE_URL" default:"postgres://postgres@127.0.0.1:5432/boxscore?sslmode=disable" help:"PostgreSQL connection string of the warehouse (Amazon Redshift: postgres://user@host:5439/dev?sslmode=verify-full...)."`
	Engine      string  `name:"warehouse-engine" env:"BOXSCORE_WAREHOUSE_ENGINE" default:"auto" enum:"auto,postgresql,redshift" help:"The warehouse's engine: postgresql, redshift (every query in the simple protocol, no prepared statement), or auto (asked with SELECT version())."`
	Schema      string  `name:"warehouse-schema" env:"BOXSCORE_WAREHOUSE_SCHEMA" default:"boxscore" help:"Schema holding the warehouse tables and views."`
	Season      int     `name:"season" default:"2024" help:"Season to report on."`
	Chart       string  `name:"chart" default:"out/ops-by-date.svg" help:"Where to write the cumulative OPS chart (SVG); missing directories are created."`
	Note        string  `name:"note" help:"Subtitle of the chart: say where the numbers come from (for example that they are simulated)."`
	Sort        string  `name:"sort" default:"ops" enum:"ops,avg,obp,slg,hr,rbi,h,sb,r,bb,so,2b,3b,tb,g,pa" help:"Statistic to rank by: ${enum}. Rates (ops, avg, obp, slg) list qualified batters only: 3.1 plate appearances per game of their team."`
	Limit       int     `name:"limit" default:"25" help:"Players listed (0: all)."`
	Team        string  `name:"team" help:"Only the players whose current team this is (Stats API abbreviation, e.g. LAD)."`
	From        string  `name:"from" placeholder:"YYYY-MM-DD" help:"First game date counted (default: the season's first)."`
	To          string  `name:"to" placeholder:"YYYY-MM-DD" help:"Last game date counted (default: the season's last)."`
	Players     []int64 `name:"player" sep:"," help:"Players drawn on the chart (MLB ids, comma-separated; default: the first five of the leaderboard)."`
	MinPA       *int    `name:"min-pa" help:"Plate appearances a player needs to be listed, for every statistic, instead of the rule."`

	// tracer, set by tests, sees every query the report sends.
	tracer pgx.QueryTracer
}

// chartPlayers is how many of the leaderboard's first players the chart draws when no
// --player is given: a chart of hundreds of lines says nothing.
const chartPlayers = 5

// Validate checks the flags kong cannot.
func (c *Command) Validate() error {
	_, err := c.filter()
	return err
}

// filter turns the flags into the league query's filter.
func (c *Command) filter() (seasonview.LeagueFilter, error) {
	f := seasonview.LeagueFilter{Season: c.Season, Team: c.Team}
	for _, d := range []struct {
		flag, value string
		dst         *time.Time
	}{{"--from", c.From, &f.From}, {"--to", c.To, &f.To}} {
		if d.value == "" {
			continue
		}
		t, err := time.Parse(time.DateOnly, d.value)
		if err != nil {
			return f, fmt.Errorf("report: %s %q is not a date (YYYY-MM-DD)", d.flag, d.value)
		}
		*d.dst = t
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.To.Before(f.From) {
		return f, fmt.Errorf("report: --to %s is before --from %s", c.To, c.From)
	}
	if c.Team != "" && !teamPattern.MatchString(c.Team) {
		return f, fmt.Errorf("report: --team %q is not a team abbreviation (2-4 capital letters, e.g. LAD)", c.Team)
	}
	if c.Limit < 0 {
		return f, fmt.Errorf("report: --limit %d is negative", c.Limit)
	}
	if c.MinPA != nil && *c.MinPA < 0 {
		return f, fmt.Errorf("report: --min-pa %d is negative", *c.MinPA)
	}
	return f, nil
}

var teamPattern = regexp.MustCompile(`^[A-Z]{2,4}$`)

// Run prints the leaderboard to stdout, writes the chart to c.Chart and says
// where it went. A selection without games is an error: there is nothing to
// report, and most likely the pipeline has not loaded anything yet.
func (c *Command) Run(ctx context.Context, stdout io.Writer) (err error) {
	filter, err := c.filter()
	if err != nil {
		return err
	}
	sortKey := cmp.Or(c.Sort, "ops")
	engine := c.Engine
	if engine == "" {
		engine = engineAuto
	}
	warehouse, err := connect(ctx, c.DatabaseURL, engine, c.tracer)
	if err != nil {
		return err
	}
	defer func() {
		if closeErr := warehouse.conn.Close(context.WithoutCancel(ctx)); closeErr != nil {
			err = errors.Join(err, fmt.Errorf("report: close the warehouse connection: %w", closeErr))
		}
	}()

	lines, err := seasonview.League(ctx, warehouse.db, c.Schema, filter)
	if err != nil {
		return err
	}
	if len(lines) == 0 {
		return fmt.Errorf("report: no batting lines for %s in schema %s", c.selection(), c.Schema)
	}
	minPA := -1
	if c.MinPA != nil {
		minPA = *c.MinPA
	}
	board, err := Rank(lines, Ranking{Sort: sortKey, MinPA: minPA, Limit: c.Limit})
	if err != nil {
		return err
	}
	if len(board.Rows) == 0 {
		return fmt.Errorf("report: none of the %d players of %s qualifies for %s (--min-pa sets the bar)", board.Players, c.selection(), sortKeys[sortKey].label)
	}

	players := c.Players
	if len(players) == 0 {
		for _, p := range board.Rows[:min(chartPlayers, len(board.Rows))] {
			players = append(players, p.ID)
		}
	}
	var cumulative map[Player][]Point
	if len(players) > 0 {
		cumulative, err = seasonview.CumulativeOPSOf(ctx, warehouse.db, c.Schema,
			seasonview.CumulativeFilter{Season: c.Season, Players: players, From: filter.From, To: filter.To})
		if err != nil {
			return err
		}
	}
	var chart bytes.Buffer
	title := fmt.Sprintf("Cumulative OPS by date, %d season", c.Season)
	if err := WriteOPSChartSVG(&chart, cumulative, title, c.Note); err != nil {
		return err
	}

	var heading strings.Builder
	fmt.Fprintf(&heading, "Batting, %s\n", c.selection())
	if c.Note != "" {
		heading.WriteString(c.Note + "\n") // the table, too, says where its numbers come from
	}
	heading.WriteString(rule(board, sortKey, minPA, c.Limit) + "\n")
	if _, err := fmt.Fprintf(stdout, "%s\n", heading.String()); err != nil {
		return fmt.Errorf("report: write leaderboard: %w", err)
	}
	if err := WriteLeaderboard(stdout, board.Rows, sortKey); err != nil {
		return err
	}
	if err := writeFileAtomically(c.Chart, chart.Bytes()); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "\nCumulative OPS chart: %s\n", c.Chart); err != nil {
		return fmt.Errorf("report: write leaderboard: %w", err)
	}
	return nil
}

// selection says which lines the report covers: "2024 season, 2024-05-01 to 2024-05-31, LAD".
func (c *Command) selection() string {
	s := fmt.Sprintf("%d season", c.Season)
	switch {
	case c.From != "" && c.To != "":
		s += fmt.Sprintf(", %s to %s", c.From, c.To)
	case c.From != "":
		s += ", from " + c.From
	case c.To != "":
		s += ", to " + c.To
	}
	if c.Team != "" {
		s += ", " + c.Team
	}
	return s
}

// rule says how the board was ranked and who is on it.
func rule(board RankedBoard, sortKey string, minPA, limit int) string {
	st := sortKeys[sortKey]
	var who string
	switch {
	case minPA >= 0:
		who = fmt.Sprintf("players with %d plate appearances or more: %d of %d", minPA, board.Qualified, board.Players)
	case st.rate:
		who = fmt.Sprintf("qualified batters (3.1 plate appearances per team game): %d of %d", board.Qualified, board.Players)
	default:
		who = fmt.Sprintf("every player: %d", board.Players)
	}
	line := fmt.Sprintf("By %s, %s", st.label, who)
	if limit > 0 && board.Qualified > limit {
		line += fmt.Sprintf(", the first %d", limit)
	}
	if len(board.EstimatedTeams) > 0 && st.rate && minPA < 0 {
		line += fmt.Sprintf("\n(team games of %s not in the warehouse: the most games one of their players played stands in)",
			strings.Join(board.EstimatedTeams, ", "))
	}
	return line
}

// writeFileAtomically writes data to path through a temporary file in the same
// directory, so a failed run never leaves half a chart where the last good one
// was. Missing directories are created.
func writeFileAtomically(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report: create chart directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("report: write chart: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name()) // best effort: the write already failed
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close() // the write error is the one to report
		return fmt.Errorf("report: write chart %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("report: write chart %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("report: write chart %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("report: write chart %s: %w", path, err)
	}
	return nil
}
