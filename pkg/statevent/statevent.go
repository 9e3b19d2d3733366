// Package statevent holds the rules about a boxscore.stats.v1.StatEvent that more than one
// service applies: its normalization, its structural (shape) checks, its baseball consistency
// checks, its ids, and the Kinesis record envelope that carries it.
//
// The pipeline applies the rules in this order:
//
//  1. Normalize trims every text field and puts it in Unicode NFC (see the text rules in
//     text.go), upper-cases team codes, and fills what a client may leave out: version 0
//     ("not given") becomes 1 on a batting line, and a zero season becomes the year of the
//     game date.
//  2. ValidateShape checks structure: required fields are present, strings and numbers are in
//     range, text holds no control characters and codes follow their formats; a retraction
//     (a tombstone) carries a reason and no batting line.
//  3. CheckConsistency checks that the counts of a well-shaped line agree with each other
//     (no more hits than at bats, and so on).
//  4. CheckVersionCeiling bounds the version by the time the event was accepted, so that no
//     single request can claim a version no later correction can beat.
//
// Each boundary distrusts its input and applies all four: the ingest gateway refuses a
// line that fails any of them (422, against its own clock), and the transformer applies
// them again to what it reads from the stream (against the envelope's accepted_at) and
// dead-letters what fails.
//
// Field paths in violations use protojson (lowerCamel) names, e.g. "batting.atBats", so they
// match the JSON a client sent.
package statevent

import statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"

// Violation is one problem with one field of an event.
type Violation struct {
	// Field is the protojson path of the field, e.g. "batting.atBats" or "game.date".
	Field string
	// Reason is machine-readable snake_case, e.g. "required", "negative", "hits_exceed_at_bats".
	Reason string
	// Detail is a human-readable sentence.
	Detail string
}

// String renders the violation as "field: detail (reason)".
func (v Violation) String() string {
	return v.Field + ": " + v.Detail + " (" + v.Reason + ")"
}

// Normalize puts ev, in place, in its one canonical form:
//
//   - every text field (event id, player name, team, game id, date, opponent, source,
//     retraction reason) is trimmed of surrounding white space and put in Unicode NFC;
//     team and opponent codes are upper-cased (ASCII letters only), so "lad " is LAD;
//     text that is not valid UTF-8 is left alone for ValidateShape to refuse;
//   - version 0 becomes 1 on a batting line (a first report needs no version; corrections
//     must carry one). A retraction keeps version 0, which ValidateShape refuses: it must
//     name a version above the line it removes;
//   - season 0 becomes the year of game.date, when the date is valid.
//
// It never fails and is idempotent: call it before ValidateShape. ValidateShape on an
// event that was not normalized rejects version 0 with reason "required". A nil event, or one
// without a game, is left as it is for ValidateShape to report.
func Normalize(ev *statsv1.StatEvent) {
	if ev == nil {
		return
	}
	ev.EventId = normalizeText(ev.GetEventId())
	ev.Source = normalizeText(ev.GetSource())
	if p := ev.GetPlayer(); p != nil {
		p.Name = normalizeText(p.GetName())
		p.Team = normalizeCode(p.GetTeam())
	}
	if g := ev.GetGame(); g != nil {
		g.GameId = normalizeText(g.GetGameId())
		g.Date = normalizeText(g.GetDate())
		g.Opponent = normalizeCode(g.GetOpponent())
	}
	if r := ev.GetRetraction(); r != nil {
		r.Reason = normalizeText(r.GetReason())
	}
	if ev.GetVersion() == 0 && ev.GetRetraction() == nil {
		ev.Version = 1
	}
	if g := ev.GetGame(); g != nil && g.GetSeason() == 0 {
		if d, err := parseGameDate(g.GetDate()); err == nil {
			g.Season = int32(d.Year())
		}
	}
}
