package statevent

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
)

// Bounds of ValidateShape. They are sanity nets against garbage, not records: the most plate
// appearances anyone has had in an MLB game is 11 (in 25- and 26-inning games), and the most
// total bases 19.
const (
	MaxEventIDLength    = 128
	MaxGameIDLength     = 64
	MaxNameLength       = 128
	MaxTeamLength       = 16
	MaxSourceLength     = 64
	MinSeason           = 1871 // the first professional league season
	MaxSeason           = 2100
	MaxGameNumber       = 2
	MaxPlateAppearances = 15
	MaxCount            = 30                      // any other per-game count
	MaxTotalBases       = 4 * MaxPlateAppearances // a home run in every plate appearance
	gameDateLayout      = "2006-01-02"
)

// countField describes one counting statistic of a BattingLine.
type countField struct {
	path     string // protojson path
	get      func(*statsv1.BattingLine) *int32
	max      int32
	optional bool
}

// countFields lists the counting statistics in proto field order, so violations come out in
// a stable, readable order.
var countFields = []countField{
	{path: "batting.plateAppearances", get: func(b *statsv1.BattingLine) *int32 { return b.PlateAppearances }, max: MaxPlateAppearances},
	{path: "batting.atBats", get: func(b *statsv1.BattingLine) *int32 { return b.AtBats }, max: MaxCount},
	{path: "batting.runs", get: func(b *statsv1.BattingLine) *int32 { return b.Runs }, max: MaxCount},
	{path: "batting.hits", get: func(b *statsv1.BattingLine) *int32 { return b.Hits }, max: MaxCount},
	{path: "batting.doubles", get: func(b *statsv1.BattingLine) *int32 { return b.Doubles }, max: MaxCount},
	{path: "batting.triples", get: func(b *statsv1.BattingLine) *int32 { return b.Triples }, max: MaxCount},
	{path: "batting.homeRuns", get: func(b *statsv1.BattingLine) *int32 { return b.HomeRuns }, max: MaxCount},
	{path: "batting.rbi", get: func(b *statsv1.BattingLine) *int32 { return b.Rbi }, max: MaxCount},
	{path: "batting.baseOnBalls", get: func(b *statsv1.BattingLine) *int32 { return b.BaseOnBalls }, max: MaxCount},
	{path: "batting.intentionalWalks", get: func(b *statsv1.BattingLine) *int32 { return b.IntentionalWalks }, max: MaxCount},
	{path: "batting.strikeOuts", get: func(b *statsv1.BattingLine) *int32 { return b.StrikeOuts }, max: MaxCount},
	{path: "batting.hitByPitch", get: func(b *statsv1.BattingLine) *int32 { return b.HitByPitch }, max: MaxCount},
	{path: "batting.sacBunts", get: func(b *statsv1.BattingLine) *int32 { return b.SacBunts }, max: MaxCount},
	{path: "batting.sacFlies", get: func(b *statsv1.BattingLine) *int32 { return b.SacFlies }, max: MaxCount},
	{path: "batting.stolenBases", get: func(b *statsv1.BattingLine) *int32 { return b.StolenBases }, max: MaxCount},
	{path: "batting.caughtStealing", get: func(b *statsv1.BattingLine) *int32 { return b.CaughtStealing }, max: MaxCount},
	{path: "batting.groundIntoDoublePlay", get: func(b *statsv1.BattingLine) *int32 { return b.GroundIntoDoublePlay }, max: MaxCount},
	{path: "batting.totalBases", get: func(b *statsv1.BattingLine) *int32 { return b.TotalBases }, max: MaxTotalBases, optional: true},
}

// ValidateShape returns the structural problems of ev, in field order; none means the event
// may enter the stream. It does not change ev: call Normalize first (see the package doc).
//
// A retraction (ev.retraction set) is a tombstone for one (player, game): it needs the
// player's MLB id, the game id, a version and a reason, and may carry no batting line; the
// rest of the player and game is optional, and checked when given.
//
// Reasons: "required" (missing, zero or blank), "negative", "too_large", "too_long",
// "invalid_characters" (a control or format character, or outside an id's character set),
// "invalid_utf8", "invalid_format" (a game id or team code outside its format),
// "invalid_date", "invalid_value" (an enum number the schema does not know),
// "out_of_range", "season_mismatch", "invalid_timestamp", "not_allowed" (a batting line on
// a retraction).
func ValidateShape(ev *statsv1.StatEvent) []Violation {
	if ev == nil {
		return []Violation{{Field: "", Reason: "required", Detail: "event is missing"}}
	}
	var vs []Violation
	add := func(field, reason, format string, args ...any) {
		vs = append(vs, Violation{Field: field, Reason: reason, Detail: fmt.Sprintf(format, args...)})
	}
	retraction := ev.GetRetraction() != nil

	if id := ev.GetEventId(); id != "" {
		switch {
		case len(id) > MaxEventIDLength:
			add("eventId", "too_long", "event id has %d characters, at most %d are allowed", len(id), MaxEventIDLength)
		case !isEventIDSafe(id):
			add("eventId", "invalid_characters", "event id may only contain letters, digits and . _ : -")
		}
	}

	if p := ev.GetPlayer(); p == nil {
		add("player", "required", "player is required")
	} else {
		switch id := p.GetMlbId(); {
		case id == 0:
			add("player.mlbId", "required", "player MLB id is required")
		case id < 0:
			add("player.mlbId", "negative", "player MLB id must be positive, got %d", id)
		}
		checkText(add, "player.name", "player name", p.GetName(), MaxNameLength, retraction)
		if checkText(add, "player.team", "team", p.GetTeam(), MaxTeamLength, retraction) && p.GetTeam() != "" && !isTeamCode(p.GetTeam()) {
			add("player.team", "invalid_format", "team %q is not a team code: %s", p.GetTeam(), FormatTeamCode)
		}
	}

	if g := ev.GetGame(); g == nil {
		add("game", "required", "game is required")
	} else {
		checkGame(add, g, retraction)
	}

	switch b := ev.GetBatting(); {
	case retraction && b != nil:
		add("batting", "not_allowed", "a retraction carries no batting line: it removes the line of its player and game")
	case retraction:
	case b == nil:
		add("batting", "required", "batting line is required")
	default:
		for _, f := range countFields {
			v := f.get(b)
			switch {
			case v == nil && !f.optional:
				add(f.path, "required", "%s is required: a missing count is an error, not a zero", f.path)
			case v == nil:
			case *v < 0:
				add(f.path, "negative", "%s must not be negative, got %d", f.path, *v)
			case *v > f.max:
				add(f.path, "too_large", "%s must be at most %d in one game, got %d", f.path, f.max, *v)
			}
		}
	}

	switch v := ev.GetVersion(); {
	case v == 0 && retraction:
		add("version", "required", "a retraction needs a version, above the version of the line it removes")
	case v == 0:
		add("version", "required", "version is required (call Normalize to default it to 1)")
	case v < 0:
		add("version", "negative", "version must be at least 1, got %d", v)
	}

	if ev.GetSourceTime() != nil {
		if err := ev.GetSourceTime().CheckValid(); err != nil {
			add("sourceTime", "invalid_timestamp", "source time is not a valid timestamp: %v", err)
		}
	}
	checkText(add, "source", "source", ev.GetSource(), MaxSourceLength, true)

	if r := ev.GetRetraction(); r != nil {
		checkText(add, "retraction.reason", "retraction reason", r.GetReason(), MaxRetractionReasonLength, false)
	}
	return vs
}

// MaxRetractionReasonLength bounds a retraction's reason, in characters: an audit note,
// not a document.
const MaxRetractionReasonLength = 512

func checkGame(add func(field, reason, format string, args ...any), g *statsv1.Game, retraction bool) {
	switch id := g.GetGameId(); {
	case strings.TrimSpace(id) == "":
		add("game.gameId", "required", "game id is required")
	case utf8.RuneCountInString(id) > MaxGameIDLength:
		add("game.gameId", "too_long", "game id has %d characters, at most %d are allowed", utf8.RuneCountInString(id), MaxGameIDLength)
	case !isGameID(id):
		if reason, detail := textCharProblem(id, "game id"); reason != "" {
			add("game.gameId", reason, "%s", detail)
		} else {
			add("game.gameId", "invalid_format", "game id %q is not a game id: %s", id, FormatGameID)
		}
	}

	dateOK := false
	var date time.Time
	if g.GetDate() == "" {
		if !retraction {
			add("game.date", "required", "game date is required")
		}
	} else if d, err := parseGameDate(g.GetDate()); err != nil {
		add("game.date", "invalid_date", "game date %q is not a valid YYYY-MM-DD date", g.GetDate())
	} else if d.Year() < MinSeason || d.Year() > MaxSeason {
		add("game.date", "out_of_range", "game date %s is outside the years %d to %d", g.GetDate(), MinSeason, MaxSeason)
	} else {
		dateOK, date = true, d
	}

	if n := g.GetGameNumber(); n < 0 || n > MaxGameNumber {
		add("game.gameNumber", "out_of_range", "game number must be 0 (single game), 1 or 2 (doubleheader), got %d", n)
	}
	if checkText(add, "game.opponent", "opponent", g.GetOpponent(), MaxTeamLength, retraction) && g.GetOpponent() != "" && !isTeamCode(g.GetOpponent()) {
		add("game.opponent", "invalid_format", "opponent %q is not a team code: %s", g.GetOpponent(), FormatTeamCode)
	}

	switch ha := g.GetHomeAway(); ha {
	case statsv1.HomeAway_HOME_AWAY_HOME, statsv1.HomeAway_HOME_AWAY_AWAY:
	case statsv1.HomeAway_HOME_AWAY_UNSPECIFIED:
		if !retraction {
			add("game.homeAway", "required", "home or away is required")
		}
	default:
		add("game.homeAway", "invalid_value", "home_away %d is not a known value", int32(ha))
	}

	switch s := g.GetSeason(); {
	case s == 0:
	case s < MinSeason || s > MaxSeason:
		add("game.season", "out_of_range", "season must be between %d and %d, got %d", MinSeason, MaxSeason, s)
	case dateOK && int(s) != date.Year():
		add("game.season", "season_mismatch", "season %d is not the year of the game date %s", s, g.GetDate())
	}
}

// checkText reports a blank (unless optional) or overlong string, or one holding invalid
// UTF-8 or a control or format character, and reports whether s passed: a format check
// that follows would only repeat the problem.
func checkText(add func(field, reason, format string, args ...any), field, what, s string, maxLen int, optional bool) bool {
	if strings.TrimSpace(s) == "" {
		if !optional {
			add(field, "required", "%s is required", what)
			return false
		}
		if s == "" {
			return true
		}
	}
	if reason, detail := textCharProblem(s, what); reason != "" {
		add(field, reason, "%s", detail)
		return false
	}
	if n := utf8.RuneCountInString(s); n > maxLen {
		add(field, "too_long", "%s has %d characters, at most %d are allowed", what, n, maxLen)
		return false
	}
	return true
}

// isEventIDSafe reports whether id only uses [A-Za-z0-9._:-]: event ids travel in logs, URLs
// and SQL, and this set needs no escaping anywhere.
func isEventIDSafe(id string) bool {
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// parseGameDate parses a strict YYYY-MM-DD date (time.Parse also rejects "2024-02-30").
// A well-formed date of ten digits and dashes, as every valid event and row carries, is read
// directly: time.Parse walks its layout for each call, a noticeable share of validating a
// line. Anything else (and a month or day out of range) goes to time.Parse, so the dates
// accepted, and the errors, stay time.Parse's own.
func parseGameDate(s string) (time.Time, error) {
	if len(s) == len(gameDateLayout) && s[4] == '-' && s[7] == '-' {
		year, okY := fourDigits(s[0:4])
		month, okM := twoDigits(s[5:7])
		day, okD := twoDigits(s[8:10])
		if okY && okM && okD && month >= 1 && month <= 12 && day >= 1 {
			// time.Date normalizes an overflowing day into the next month: equal fields
			// mean the day exists in that month and year.
			d := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
			if d.Day() == day && d.Month() == time.Month(month) {
				return d, nil
			}
		}
	}
	d, err := time.Parse(gameDateLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse game date %q: %w", s, err)
	}
	return d, nil
}

// twoDigits reads two ASCII decimal digits.
func twoDigits(s string) (int, bool) {
	if s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' {
		return 0, false
	}
	return int(s[0]-'0')*10 + int(s[1]-'0'), true
}

// fourDigits reads four ASCII decimal digits.
func fourDigits(s string) (int, bool) {
	hi, okHi := twoDigits(s[0:2])
	lo, okLo := twoDigits(s[2:4])
	return hi*100 + lo, okHi && okLo
}
