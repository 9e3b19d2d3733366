package extract

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/gamelog"
)

// Coded game states of the Stats API that the league extraction decides on.
const (
	codedFinal     = "F"
	codedPostponed = "D"
	codedCancelled = "C"
)

// LeagueQuery is what a league extraction reads: the games of gameType from From to To
// (YYYY-MM-DD, inclusive), of one team when TeamID > 0.
type LeagueQuery struct {
	From, To string
	GameType string
	TeamID   int
	// Concurrency bounds the games read at the same time (at least 1).
	Concurrency int
}

// SkippedGame is a scheduled game whose lines were not extracted, and why.
type SkippedGame struct {
	GamePk int64
	Date   string // the schedule's officialDate of the entry
	Teams  string // "AWAY @ HOME"
	// Kind is one of a small set (SkipPostponed, ..., FailHTTP, ...), the reason
	// attribute of the games counter; Reason says it in full.
	Kind   string
	Reason string
}

// LeagueResult is what a league extraction read.
type LeagueResult struct {
	Rows []gamelog.Row // sorted as in a game-log file
	// Listed counts the distinct games of the schedule; Read the games whose lines are in Rows.
	Listed, Read int
	// Corrections counts the lines changed after their game ended (official scoring
	// changes): their version is the timecode of that change, not the game's end.
	Corrections int
	// Skipped are games not final (postponed, cancelled, suspended, not over yet):
	// nothing of them is in Rows; a later run picks them up once final.
	Skipped []SkippedGame
	// Failed are final games that could not be read (after retries): nothing of them
	// is in Rows either.
	Failed []SkippedGame
}

// ExtractLeague reads the schedule, then every final game's batting lines, at most
// q.Concurrency games at a time. A game that fails is reported in Failed and the others
// are still read; only a schedule that cannot be read, or a cancelled context, fails the
// whole extraction.
func ExtractLeague(ctx context.Context, client *Client, q LeagueQuery) (*LeagueResult, error) {
	dates, err := client.Schedule(ctx, q.From, q.To, q.GameType, q.TeamID)
	if err != nil {
		return nil, err
	}
	res := &LeagueResult{}
	games := selectGames(dates, q.GameType, res)
	in := client.instruments
	for _, g := range res.Skipped {
		// Not a game of this window's reading (postponed, cancelled, completed another
		// day): no request, so no span of its own, an event of the run's span.
		trace.SpanFromContext(ctx).AddEvent("game skipped", trace.WithAttributes(
			attribute.Int64(spanAttrGamePk, g.GamePk), attribute.String(spanAttrGameDate, g.Date), attribute.String(spanAttrReason, g.Kind),
			attribute.String(spanAttrDetail, g.Reason)))
	}

	outcomes := make([]gameOutcome, len(games))
	sem := make(chan struct{}, max(q.Concurrency, 1))
	var wg sync.WaitGroup
	for i, g := range games {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			outcomes[i] = readGame(ctx, in, client, g)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("league extraction %s to %s: %w", q.From, q.To, err)
	}
	for i, o := range outcomes {
		g := games[i]
		switch {
		case o.err != nil:
			res.Failed = append(res.Failed, skipped(g, failureKind(o.err), o.err.Error()))
		case o.skip != "":
			res.Skipped = append(res.Skipped, skipped(g, SkipNotFinal, o.skip))
		default:
			res.Read++
			res.Corrections += o.corrections
			res.Rows = append(res.Rows, o.rows...)
		}
	}
	// Counted once the run is known complete: a cancelled run counts nothing.
	if res.Read > 0 {
		in.games.Add(ctx, int64(res.Read), metric.WithAttributes(attribute.String(attrOutcome, OutcomeRead)))
	}
	for _, g := range res.Skipped {
		in.countGame(ctx, OutcomeSkipped, g.Kind)
	}
	for _, g := range res.Failed {
		in.countGame(ctx, OutcomeFailed, g.Kind)
	}
	if res.Corrections > 0 {
		in.corrections.Add(ctx, int64(res.Corrections))
	}
	SortRows(res.Rows)
	return res, nil
}

// gameOutcome is what reading one game gave: its lines, or why it was skipped, or failed.
type gameOutcome struct {
	rows        []gamelog.Row
	corrections int
	skip        string
	err         error
}

// readGame reads one game in a span of its own (a child of the run's), whose children are
// the game's requests to the Stats API.
func readGame(ctx context.Context, in *instruments, client *Client, g ScheduledGame) gameOutcome {
	ctx, span := in.tracer.Start(ctx, "extract game", trace.WithAttributes(
		attribute.Int64(spanAttrGamePk, g.GamePk), attribute.String(spanAttrGameDate, g.OfficialDate),
		attribute.String(spanAttrStatus, g.Status.DetailedState)))
	defer span.End()
	rows, corrections, skip, err := extractGame(ctx, client, g)
	switch {
	case err != nil:
		span.SetAttributes(attribute.String(spanAttrOutcome, OutcomeFailed), attribute.String(spanAttrReason, failureKind(err)))
		span.RecordError(err)
		span.SetStatus(otelcodes.Error, err.Error())
	case skip != "":
		span.SetAttributes(attribute.String(spanAttrOutcome, OutcomeSkipped), attribute.String(spanAttrReason, SkipNotFinal), attribute.String(spanAttrDetail, skip))
	default:
		span.SetAttributes(attribute.String(spanAttrOutcome, OutcomeRead), attribute.Int(spanAttrLines, len(rows)), attribute.Int(spanAttrCorrections, corrections))
	}
	return gameOutcome{rows: rows, corrections: corrections, skip: skip, err: err}
}

// selectGames returns the schedule entries to read, one per game, and records the others
// in res.Skipped. A game listed twice (postponed then played, suspended then completed)
// is read from the entry of the day it was played or completed, and only from that one:
// its lines carry that day's date and game number whichever window a run covers, so two
// runs never send the same line twice under different dates.
func selectGames(dates []ScheduleDate, gameType string, res *LeagueResult) []ScheduledGame {
	var order []int64
	entries := map[int64][]ScheduledGame{}
	for _, d := range dates {
		for _, g := range d.Games {
			if g.GameType != gameType {
				continue // the API may add other types even when asked for one
			}
			if _, seen := entries[g.GamePk]; !seen {
				order = append(order, g.GamePk)
			}
			entries[g.GamePk] = append(entries[g.GamePk], g)
		}
	}
	res.Listed = len(order)
	var read []ScheduledGame
	for _, pk := range order {
		var playable []ScheduledGame
		var notes []SkippedGame
		for _, g := range entries[pk] {
			if reason := notPlayedHere(g); reason != "" {
				notes = append(notes, skipped(g, skipKind(g), reason))
				continue
			}
			if !slices.ContainsFunc(playable, func(p ScheduledGame) bool { return p.OfficialDate == g.OfficialDate }) {
				playable = append(playable, g)
			}
		}
		if len(playable) == 0 {
			res.Skipped = append(res.Skipped, notes...)
			continue
		}
		// The day the game was played or completed is the last playable entry.
		read = append(read, playable[len(playable)-1])
	}
	return read
}

// notPlayedHere says why a schedule entry is not the one a game's lines come from, or ""
// when it is.
func notPlayedHere(g ScheduledGame) string {
	st := g.Status
	switch {
	case st.CodedGameState == codedPostponed:
		reason := "postponed"
		if st.Reason != "" {
			reason += " (" + st.Reason + ")"
		}
		if d := cmp.Or(dateOf(g.RescheduleGameDate), dateOf(g.RescheduleDate)); d != "" {
			reason += ", rescheduled to " + d
		}
		return reason
	case st.CodedGameState == codedCancelled:
		return "cancelled: " + st.DetailedState
	}
	if resumed := cmp.Or(dateOf(g.ResumeGameDate), dateOf(g.ResumeDate)); resumed != "" && resumed != g.OfficialDate {
		return fmt.Sprintf("suspended (%s), completed on %s: its lines are read with that day's games", st.DetailedState, resumed)
	}
	return ""
}

// dateOf is the YYYY-MM-DD part of a date or date-time the schedule gives, "" when absent.
func dateOf(v string) string {
	if len(v) < len(time.DateOnly) {
		return ""
	}
	return v[:len(time.DateOnly)]
}

func skipped(g ScheduledGame, kind, reason string) SkippedGame {
	teams := fmt.Sprintf("%d @ %d", g.Teams.Away.Team.ID, g.Teams.Home.Team.ID)
	if season, err := strconv.Atoi(g.Season); err == nil {
		away, okAway := ClubAbbreviation(g.Teams.Away.Team.ID, season)
		home, okHome := ClubAbbreviation(g.Teams.Home.Team.ID, season)
		if okAway && okHome {
			teams = away + " @ " + home
		}
	}
	return SkippedGame{GamePk: g.GamePk, Date: g.OfficialDate, Teams: teams, Kind: kind, Reason: reason}
}

// extractGame reads one game: its lines with their versions, how many of them were changed
// after the game ended, or why it is skipped (not final yet).
func extractGame(ctx context.Context, client *Client, g ScheduledGame) ([]gamelog.Row, int, string, error) {
	if g.Status.CodedGameState != codedFinal {
		return nil, 0, fmt.Sprintf("not final (%s): read by a later run", g.Status.DetailedState), nil
	}
	feed, err := client.LiveFeed(ctx, g.GamePk, "")
	if err != nil {
		return nil, 0, "", err
	}
	if st := feed.GameData.Status; st.CodedGameState != codedFinal {
		// The schedule said final before the game's own feed does: wait for the feed.
		return nil, 0, fmt.Sprintf("not final in its live feed (%s): read by a later run", st.DetailedState), nil
	}
	lines, err := battingLines(g, feed)
	if err != nil {
		return nil, 0, "", fmt.Errorf("game %d: %w", g.GamePk, err)
	}
	corrections, err := setVersions(ctx, client, g, feed, lines)
	if err != nil {
		return nil, 0, "", fmt.Errorf("game %d: %w", g.GamePk, err)
	}
	rows := make([]gamelog.Row, 0, len(lines))
	for _, r := range lines {
		rows = append(rows, r)
	}
	SortRows(rows)
	return rows, corrections, "", nil
}

// battingLines maps the box score of feed to one row per batter, keyed by player id,
// version 0 (set by setVersions). A batter is a player with a batting line who took a
// place in the batting order (starters, pinch hitters and runners, defensive substitutes:
// a pitcher who bats, too) or who has a plate appearance. Pitchers who did not bat and
// bench players who did not enter have no line.
func battingLines(g ScheduledGame, feed *LiveFeed) (map[int64]gamelog.Row, error) {
	season, err := strconv.Atoi(g.Season)
	if err != nil {
		return nil, fmt.Errorf("season %q is not a year", g.Season)
	}
	if _, err := time.Parse(time.DateOnly, g.OfficialDate); err != nil {
		return nil, fmt.Errorf("officialDate %q is not a date (YYYY-MM-DD)", g.OfficialDate)
	}
	gameNumber := 0
	if g.DoubleHeader != "N" && g.DoubleHeader != "" {
		if g.GameNumber != 1 && g.GameNumber != 2 {
			return nil, fmt.Errorf("doubleheader game number %d is neither 1 nor 2", g.GameNumber)
		}
		gameNumber = g.GameNumber
	}
	teams := feed.LiveData.Boxscore.Teams
	lines := map[int64]gamelog.Row{}
	for _, side := range []struct {
		home          bool
		team, against BoxscoreTeam
	}{{false, teams.Away, teams.Home}, {true, teams.Home, teams.Away}} {
		team, err := clubAbbreviation(side.team.Team, season)
		if err != nil {
			return nil, fmt.Errorf("team: %w", err)
		}
		opponent, err := clubAbbreviation(side.against.Team, season)
		if err != nil {
			return nil, fmt.Errorf("opponent: %w", err)
		}
		for key, p := range side.team.Players {
			st := p.Stats.Batting
			if st.PlateAppearances == nil || (p.BattingOrder == "" && *st.PlateAppearances == 0) {
				continue
			}
			if p.Person.ID <= 0 || key != "ID"+strconv.FormatInt(p.Person.ID, 10) {
				return nil, fmt.Errorf("player %q: person.id %d does not match the key", key, p.Person.ID)
			}
			name := strings.TrimSpace(p.Person.FullName)
			if name == "" {
				return nil, fmt.Errorf("player %d: person.fullName is missing", p.Person.ID)
			}
			if _, dup := lines[p.Person.ID]; dup {
				return nil, fmt.Errorf("player %d bats for both teams", p.Person.ID)
			}
			row := gamelog.Row{Season: season, GameDate: g.OfficialDate, GameID: strconv.FormatInt(g.GamePk, 10),
				GameNumber: gameNumber, PlayerID: p.Person.ID, PlayerName: name, Team: team, Opponent: opponent, Home: side.home}
			if err := setCounts(&row, st); err != nil {
				return nil, fmt.Errorf("player %d: %w", p.Person.ID, err)
			}
			lines[p.Person.ID] = row
		}
	}
	return lines, nil
}

// setVersions gives every line its version: the timecode, in microseconds since the Unix
// epoch, from which the line has had its current content, but never earlier than the end
// of the game (the first timecode at or after the end of its last play). A line unchanged
// since the game ended is versioned by the game's end, the same on every run; a line that
// an official scoring change altered later is versioned by that change, so its version
// grows exactly when its content does. It returns how many lines were changed after the
// game ended. See docs/extraction.md.
func setVersions(ctx context.Context, client *Client, g ScheduledGame, feed *LiveFeed, lines map[int64]gamelog.Row) (int, error) {
	now := feed.MetaData.TimeStamp
	if _, err := ParseTimecode(now); err != nil {
		return 0, fmt.Errorf("live feed metaData.timeStamp: %w", err)
	}
	codes, err := client.Timecodes(ctx, g.GamePk)
	if err != nil {
		return 0, err
	}
	// Only the history up to the state read: a change recorded after it is the next run's.
	codes = codes[:sort.SearchStrings(codes, now)]
	codes = append(codes, now)

	base := len(codes) - 1
	if plays := feed.LiveData.Plays.AllPlays; len(plays) > 0 {
		end, err := time.Parse(time.RFC3339Nano, plays[len(plays)-1].About.EndTime)
		if err != nil {
			return 0, fmt.Errorf("the last play's about.endTime %q is not a time", plays[len(plays)-1].About.EndTime)
		}
		base = min(sort.SearchStrings(codes, end.UTC().Format("20060102_150405")), base)
	}

	// lineAt returns the lines at codes[i], fetched once per run whatever asks for them.
	lineAt := func(i int) (map[int64]gamelog.Row, error) {
		if i == len(codes)-1 {
			return lines, nil
		}
		snap, err := client.LiveFeed(ctx, g.GamePk, codes[i])
		if err != nil {
			return nil, err
		}
		return battingLines(g, snap)
	}
	baseLines, err := lineAt(base)
	if err != nil {
		return 0, err
	}
	corrections := 0
	for id, row := range lines {
		at := base
		if old, ok := baseLines[id]; !ok || !sameLine(old, row) {
			corrections++
			// The earliest timecode after the game's end from which the line is as now.
			// Assumes a line that reached its current content kept it (see the doc).
			lo, hi := base+1, len(codes)-1
			for lo < hi {
				mid := lo + (hi-lo)/2
				then, err := lineAt(mid)
				if err != nil {
					return 0, err
				}
				if old, ok := then[id]; ok && sameLine(old, row) {
					hi = mid
				} else {
					lo = mid + 1
				}
			}
			at = lo
		}
		t, err := ParseTimecode(codes[at])
		if err != nil {
			return 0, err
		}
		row.Version = t.UnixMicro()
		lines[id] = row
	}
	return corrections, nil
}

// sameLine reports whether two lines of the same game have the same content (the version
// aside).
func sameLine(a, b gamelog.Row) bool {
	if (a.TotalBases == nil) != (b.TotalBases == nil) || (a.TotalBases != nil && *a.TotalBases != *b.TotalBases) {
		return false
	}
	a.TotalBases, b.TotalBases = nil, nil
	a.Version, b.Version = 0, 0
	return a == b
}
