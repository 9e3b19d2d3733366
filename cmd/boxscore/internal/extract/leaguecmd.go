package extract

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // --time-zone must resolve in a container without a zoneinfo database

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// maxLeagueDays bounds a league window: a season, at ~3 requests per game, is already
// thousands of requests.
const maxLeagueDays = 366

func (c *Command) leagueMode() bool { return c.Date != "" || c.From != "" || c.To != "" }

func (c *Command) validateLeague() error {
	if len(c.Players) > 0 || c.Season != 0 {
		return errors.New("--player/--season (player mode) and --date/--from/--to (league mode) are exclusive")
	}
	if c.Date != "" && (c.From != "" || c.To != "") {
		return errors.New("--date and --from/--to are exclusive")
	}
	if c.Date == "" && (c.From == "" || c.To == "") {
		return errors.New("--from and --to go together")
	}
	if c.LookBack < 0 {
		return fmt.Errorf("--look-back: %d is negative", c.LookBack)
	}
	if c.Concurrency < 1 {
		return fmt.Errorf("--concurrency: %d is not at least 1", c.Concurrency)
	}
	if strings.TrimSpace(c.GameType) == "" {
		return errors.New("--game-type is empty")
	}
	if _, err := c.teamID(); err != nil {
		return err
	}
	if _, _, err := c.window(); err != nil {
		return err
	}
	return c.validateCommon()
}

// teamID resolves --team: 0 for every team.
func (c *Command) teamID() (int, error) {
	t := strings.TrimSpace(c.Team)
	if t == "" {
		return 0, nil
	}
	if id, err := strconv.Atoi(t); err == nil {
		if _, ok := clubAbbreviations[id]; ok {
			return id, nil
		}
		return 0, fmt.Errorf("--team: %d is not the id of one of the 30 MLB clubs", id)
	}
	for id, abbreviation := range clubAbbreviations {
		if strings.EqualFold(abbreviation, t) {
			return id, nil
		}
	}
	return 0, fmt.Errorf("--team: %q is not the abbreviation of an MLB club (LAD, NYY, ...)", t)
}

// window returns the first and last day read: --from/--to, or --date and the --look-back
// days before it.
func (c *Command) window() (string, string, error) {
	if c.Date == "" {
		from, err := parseDay("--from", c.From)
		if err != nil {
			return "", "", err
		}
		to, err := parseDay("--to", c.To)
		if err != nil {
			return "", "", err
		}
		if to.Before(from) {
			return "", "", fmt.Errorf("--to %s is before --from %s", c.To, c.From)
		}
		return checkedWindow(from, to)
	}
	var day time.Time
	switch c.Date {
	case "today", "yesterday":
		loc, err := time.LoadLocation(c.TimeZone)
		if err != nil {
			return "", "", fmt.Errorf("--time-zone: %w", err)
		}
		now := time.Now
		if c.now != nil {
			now = c.now
		}
		y, m, d := now().In(loc).Date()
		day = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		if c.Date == "yesterday" {
			day = day.AddDate(0, 0, -1)
		}
	default:
		var err error
		if day, err = parseDay("--date", c.Date); err != nil {
			return "", "", err
		}
	}
	return checkedWindow(day.AddDate(0, 0, -c.LookBack), day)
}

func checkedWindow(from, to time.Time) (string, string, error) {
	if days := int(to.Sub(from).Hours()/24) + 1; days > maxLeagueDays {
		return "", "", fmt.Errorf("the window %s to %s is %d days: at most %d", from.Format(time.DateOnly), to.Format(time.DateOnly), days, maxLeagueDays)
	}
	if from.Year() < statevent.MinSeason || to.Year() > statevent.MaxSeason {
		return "", "", fmt.Errorf("the window %s to %s is outside seasons %d to %d", from.Format(time.DateOnly), to.Format(time.DateOnly), statevent.MinSeason, statevent.MaxSeason)
	}
	return from.Format(time.DateOnly), to.Format(time.DateOnly), nil
}

func parseDay(flag, v string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %q is not a date (YYYY-MM-DD)", flag, v)
	}
	return t, nil
}

// runLeague extracts the window's final games and writes or posts their lines. Games that
// failed are reported and make the run fail, after the other games' lines went out: they
// are complete, and sending them again on the next run adds nothing.
func (c *Command) runLeague(ctx context.Context, client *Client, stdout, stderr io.Writer) (err error) {
	from, to, err := c.window()
	if err != nil {
		return err
	}
	teamID, err := c.teamID()
	if err != nil {
		return err
	}
	team := "all"
	if teamID > 0 {
		team = clubAbbreviations[teamID]
	}
	ctx, span := client.instruments.tracer.Start(ctx, "extract league", trace.WithAttributes(
		attribute.String(spanAttrFrom, from), attribute.String(spanAttrTo, to), attribute.String(spanAttrTeam, team),
		attribute.String(spanAttrGameType, c.GameType), attribute.Bool(spanAttrPost, c.Post)))
	defer func() { endSpan(span, err) }()
	started := time.Now()
	res, err := ExtractLeague(ctx, client, LeagueQuery{From: from, To: to, GameType: c.GameType, TeamID: teamID, Concurrency: c.Concurrency})
	if err != nil {
		return err
	}
	span.SetAttributes(attribute.Int(spanAttrGamesListed, res.Listed), attribute.Int(spanAttrGamesRead, res.Read),
		attribute.Int(spanAttrLines, len(res.Rows)), attribute.Int(spanAttrCorrections, res.Corrections),
		attribute.Int(spanAttrGamesSkipped, len(res.Skipped)), attribute.Int(spanAttrGamesFailed, len(res.Failed)))
	what := from + " to " + to
	res.print(stderr, what)
	slog.InfoContext(ctx, "league extraction", "from", from, "to", to, "games_listed", res.Listed, "games_read", res.Read,
		"lines", len(res.Rows), "corrections", res.Corrections, "games_skipped", len(res.Skipped), "games_failed", len(res.Failed),
		"duration", time.Since(started).Round(time.Millisecond))
	if c.Post {
		err = c.post(ctx, client.instruments, res.Rows, what, stdout, stderr)
	} else {
		err = c.write(res.Rows, what, stdout, stderr)
	}
	if len(res.Failed) > 0 {
		return errors.Join(err, fmt.Errorf("%d games could not be read (see above); a rerun reads them again and sends nothing twice", len(res.Failed)))
	}
	return err
}

// print writes the extraction summary: counts, then every game skipped or failed.
func (r *LeagueResult) print(w io.Writer, what string) {
	fmt.Fprintf(w, "extracted %s\n", what)
	fmt.Fprintf(w, "  games listed   %d\n", r.Listed)
	fmt.Fprintf(w, "  games read     %d\n", r.Read)
	fmt.Fprintf(w, "  lines          %d\n", len(r.Rows))
	fmt.Fprintf(w, "  corrections    %d\n", r.Corrections)
	fmt.Fprintf(w, "  games skipped  %d\n", len(r.Skipped))
	fmt.Fprintf(w, "  games failed   %d\n", len(r.Failed))
	for _, g := range r.Skipped {
		fmt.Fprintf(w, "  skipped: %s game %d %s: %s\n", g.Date, g.GamePk, g.Teams, g.Reason)
	}
	for _, g := range r.Failed {
		fmt.Fprintf(w, "  failed:  %s game %d %s: %s\n", g.Date, g.GamePk, g.Teams, g.Reason)
	}
}
