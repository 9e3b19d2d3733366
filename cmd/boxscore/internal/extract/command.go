package extract

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/credential"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/gamelog"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// Source is the source of the stat events the extractor posts.
const Source = "mlb-statsapi"

// Command is the "extract" command, in one of two modes: the regular-season game logs of
// some players for one season (--player, --season), or every batter's line of the league's
// final games of some days (--date, or --from and --to). Either is written as a game-log
// CSV or posted to the ingest gateway. Its fields are kong flags.
type Command struct {
	Players []int64 `name:"player" placeholder:"MLB-ID" help:"Player mode: MLB player id; repeat the flag or separate ids with commas."`
	Season  int     `help:"Player mode: season (year) to extract."`

	Date        string  `placeholder:"YYYY-MM-DD" help:"League mode: the games of this day (YYYY-MM-DD, \"today\" or \"yesterday\" in --time-zone) and of the --look-back days before it."`
	LookBack    int     `name:"look-back" default:"3" help:"League mode with --date: also re-read this many days before it, so late games and scoring changes are picked up."`
	From        string  `placeholder:"YYYY-MM-DD" help:"League mode: first day of a range (with --to)."`
	To          string  `placeholder:"YYYY-MM-DD" help:"League mode: last day of a range (with --from)."`
	Team        string  `placeholder:"TEAM" help:"League mode: only the games of this club (abbreviation such as LAD, or MLB team id); both teams' lines are read."`
	GameType    string  `name:"game-type" default:"R" help:"League mode: Stats API game type (R regular season, F/D/L/W postseason rounds, S spring)."`
	TimeZone    string  `name:"time-zone" default:"America/New_York" help:"League mode: time zone in which --date today/yesterday is read (MLB's official dates are US dates)."`
	Concurrency int     `default:"4" help:"League mode: games read at the same time."`
	RateLimit   float64 `name:"rate-limit" default:"5" help:"Requests per second to the Stats API, retries included (0: unlimited)."`
	now         func() time.Time
	batchEvents int // events per gateway request; 0 is ingestclient.MaxBatchEvents (tests set less)

	BaseURL string        `name:"base-url" env:"BOXSCORE_MLB_API_URL" default:"https://statsapi.mlb.com" help:"Base URL of the MLB Stats API."`
	Timeout time.Duration `default:"30s" help:"Timeout of each HTTP request (failed requests are retried)."`
	Out     string        `short:"o" default:"-" placeholder:"FILE" help:"CSV file to write, \"-\" for standard output. Written whole or not at all."`
	Post    bool          `help:"Send the rows to the ingest gateway instead of writing a CSV."`
	Gateway string        `env:"BOXSCORE_GATEWAY_URL" default:"http://127.0.0.1:8080" help:"Base URL of the ingest gateway, for --post."`
	credential.Flags
}

// Validate checks the flags together; kong calls it after parsing, Run calls it again for
// callers that build a Command by hand.
func (c *Command) Validate() error {
	if c.leagueMode() {
		return c.validateLeague()
	}
	if len(c.Players) == 0 {
		return errors.New("--player (with --season), or --date / --from and --to for the whole league, is required")
	}
	for _, id := range c.Players {
		if id <= 0 {
			return fmt.Errorf("--player: %d is not an MLB player id (a positive whole number)", id)
		}
	}
	if c.Season < statevent.MinSeason || c.Season > statevent.MaxSeason {
		return fmt.Errorf("--season: %d is not a season between %d and %d", c.Season, statevent.MinSeason, statevent.MaxSeason)
	}
	return c.validateCommon()
}

func (c *Command) validateCommon() error {
	if c.Timeout <= 0 {
		return fmt.Errorf("--timeout: %s is not a positive duration", c.Timeout)
	}
	if c.RateLimit < 0 {
		return fmt.Errorf("--rate-limit: %g is negative", c.RateLimit)
	}
	if c.Post && c.Out != "" && c.Out != "-" {
		return errors.New("--out and --post are exclusive: --post sends the rows to the gateway instead of writing them")
	}
	return nil
}

// Run fetches every player's game log, then writes the CSV or posts the events. Nothing is
// written or sent unless every player's log was fetched and mapped. Progress and warnings
// go to stderr; with --out "-" the CSV goes to stdout.
func (c *Command) Run(ctx context.Context, stdout, stderr io.Writer) (err error) {
	if err := c.Validate(); err != nil {
		return err
	}
	flushTelemetry, err := StartTelemetry(ctx, stderr)
	if err != nil {
		return err
	}
	defer flushTelemetry() // last: after the run's span ended
	client, err := NewClient(c.BaseURL, WithTimeout(c.Timeout), WithRateLimit(c.RateLimit, 1),
		WithRetryNotify(func(err error, wait time.Duration) {
			fmt.Fprintf(stderr, "retrying in %s: %v\n", wait.Round(time.Millisecond), err)
		}))
	if err != nil {
		return err
	}
	if c.leagueMode() {
		return c.runLeague(ctx, client, stdout, stderr)
	}
	ctx, span := client.instruments.tracer.Start(ctx, "extract players", trace.WithAttributes(
		attribute.Int(spanAttrSeason, c.Season), attribute.Int(spanAttrPlayers, len(c.Players)), attribute.Bool(spanAttrPost, c.Post)))
	defer func() { endSpan(span, err) }()
	rows, err := c.fetch(ctx, client, stderr)
	if err != nil {
		return err
	}
	span.SetAttributes(attribute.Int(spanAttrLines, len(rows)))
	if c.Post {
		return c.post(ctx, client.instruments, rows, fmt.Sprintf("season %d", c.Season), stdout, stderr)
	}
	return c.write(rows, fmt.Sprintf("season %d", c.Season), stdout, stderr)
}

func (c *Command) fetch(ctx context.Context, client *Client, stderr io.Writer) ([]gamelog.Row, error) {
	var rows []gamelog.Row
	var seen []int64
	for _, id := range c.Players {
		if slices.Contains(seen, id) {
			continue // a repeated id would repeat its rows
		}
		seen = append(seen, id)
		splits, err := client.GameLog(ctx, id, c.Season, GameTypeRegularSeason)
		if err != nil {
			return nil, err
		}
		playerRows, err := Rows(id, c.Season, GameTypeRegularSeason, splits)
		if err != nil {
			return nil, err
		}
		if len(playerRows) == 0 {
			fmt.Fprintf(stderr, "player %d has no regular-season games in %d\n", id, c.Season)
		}
		rows = append(rows, playerRows...)
	}
	SortRows(rows)
	return rows, nil
}

func (c *Command) write(rows []gamelog.Row, what string, stdout, stderr io.Writer) error {
	writeRows := func(w io.Writer) error {
		gw := gamelog.NewWriter(w)
		for _, r := range rows {
			if err := gw.Write(r); err != nil {
				return fmt.Errorf("write game log: %w", err)
			}
		}
		if err := gw.Flush(); err != nil {
			return fmt.Errorf("write game log: %w", err)
		}
		return nil
	}
	out := c.Out
	if out == "" || out == "-" {
		out = "standard output"
		if err := writeRows(stdout); err != nil {
			return err
		}
	} else if err := writeFileAtomically(out, writeRows); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %d rows, %s, to %s\n", len(rows), what, out)
	return nil
}

// writeFileAtomically writes path through a temporary file in the same directory, renamed
// over path only once it is complete and synced: a failed run leaves no half CSV behind.
func writeFileAtomically(path string, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close() // already failing; the close error adds nothing
			if rmErr := os.Remove(tmp.Name()); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
				err = errors.Join(err, fmt.Errorf("remove temporary file: %w", rmErr))
			}
		}
	}()
	if err := write(tmp); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil { // CreateTemp makes 0600; a CSV is for reading
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
