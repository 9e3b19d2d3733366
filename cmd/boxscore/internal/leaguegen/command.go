package leaguegen

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Command is `boxscore season generate`.
type Command struct {
	Seed   uint64   `name:"seed" default:"1" help:"Seed of the simulation: the same seed and flags write the same bytes."`
	Season int      `name:"season" default:"2024" help:"Season year (2023 or later: the balanced schedule)."`
	From   string   `name:"from" placeholder:"YYYY-MM-DD" help:"First game date to write (default: opening day)."`
	To     string   `name:"to" placeholder:"YYYY-MM-DD" help:"Last game date to write (default: the last day of the season)."`
	Teams  []string `name:"teams" sep:"," placeholder:"LAD,SD" help:"Write only these teams' lines (Stats API abbreviations); default all 30."`
	Out    string   `name:"out" short:"o" default:"-" help:"File to write; '-' for stdout."`
}

// Help is the long help of the command.
func (c *Command) Help() string {
	return `Simulates a whole major-league regular season (30 teams, a 162-game balanced schedule
with doubleheaders, about 1,300 players with injuries, call-ups and trades, batting lines
from a plate-appearance simulation) and writes it as a game-log CSV that 'boxscore replay'
reads. About 0.4% of the lines are re-emitted one to three days later with version 2: an
official scoring change. The whole season is always simulated; --from, --to and --teams
select the part written, so a month is exactly that month of the full season.

The summary (games, players, lines, corrections, league batting line) goes to stderr.`
}

// options parses the flags.
func (c *Command) options() (Options, error) {
	opts := Options{Seed: c.Seed, Season: c.Season}
	var errs []error
	for _, f := range []struct {
		name, value string
		dst         *time.Time
	}{{"--from", c.From, &opts.From}, {"--to", c.To, &opts.To}} {
		if f.value == "" {
			continue
		}
		d, err := time.Parse(time.DateOnly, f.value)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q is not a date (YYYY-MM-DD)", f.name, f.value))
			continue
		}
		if d.Year() != c.Season && c.Season != 0 {
			errs = append(errs, fmt.Errorf("%s %s is not in season %d", f.name, f.value, c.Season))
		}
		*f.dst = d
	}
	for _, t := range c.Teams {
		opts.Teams = append(opts.Teams, strings.ToUpper(strings.TrimSpace(t)))
	}
	if err := errors.Join(errs...); err != nil {
		return opts, err
	}
	return opts, opts.Validate()
}

// Validate checks the flags (kong calls it after parsing).
func (c *Command) Validate() error {
	_, err := c.options()
	return err
}

// Run generates the season and writes it to --out (or stdout), the summary to stderr.
func (c *Command) Run(stdout, stderr io.Writer) error {
	opts, err := c.options()
	if err != nil {
		return err
	}
	start := time.Now()
	res, err := Generate(opts)
	if err != nil {
		return fmt.Errorf("generate season %d: %w", opts.Season, err)
	}
	dest := "stdout"
	if c.Out == "" || c.Out == "-" {
		w := bufio.NewWriterSize(stdout, 1<<16)
		if err := WriteCSV(w, res.Rows); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("write game log to stdout: %w", err)
		}
	} else {
		dest = c.Out
		if err := writeFile(c.Out, res); err != nil {
			return err
		}
	}
	printSummary(stderr, c.Seed, res, dest, time.Since(start))
	return nil
}

// writeFile writes the CSV beside the destination and renames it into place, so a reader
// never sees half a season.
func writeFile(path string, res *Result) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name()) // the error that matters is the one returned
		}
	}()
	w := bufio.NewWriterSize(tmp, 1<<16)
	if err := WriteCSV(w, res.Rows); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil { //nolint:gosec // a data file for other tools to read, as os.Create would make it
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func printSummary(w io.Writer, seed uint64, res *Result, dest string, elapsed time.Duration) {
	first, last := "-", "-"
	if len(res.Games) > 0 {
		first, last = res.Games[0].Date.Format(time.DateOnly), res.Games[len(res.Games)-1].Date.Format(time.DateOnly)
	}
	t := res.Totals
	fmt.Fprintf(w, "season %d, seed %d -> %s\n", res.Season, seed, dest)
	fmt.Fprintf(w, "  games:        %d (%s to %s)\n", len(res.Games), first, last)
	fmt.Fprintf(w, "  players:      %d on a roster, %d with lines\n", res.RosteredPlayers, res.PlayersWithLines())
	fmt.Fprintf(w, "  lines:        %d\n", t.Lines)
	fmt.Fprintf(w, "  corrections:  %d (version 2 rows)\n", res.Corrections)
	fmt.Fprintf(w, "  rows:         %d\n", len(res.Rows))
	fmt.Fprintf(w, "  league:       %s/%s/%s, %d runs, %d home runs\n", rate(t.AVG()), rate(t.OBP()), rate(t.SLG()), t.Runs, t.HomeRuns)
	fmt.Fprintf(w, "  elapsed:      %s\n", elapsed.Round(time.Millisecond))
}

// rate formats a batting rate as baseball does: .245, 1.012.
func rate(v float64) string {
	return strings.TrimPrefix(fmt.Sprintf("%.3f", v), "0")
}
