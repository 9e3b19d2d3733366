// Package statevent holds the rules about a boxscore.stats.v1.StatEvent that more than one
// service applies: its normalization, its structural (shape) checks, its baseball consistency
// checks, its ids, and the Kinesis record envelope that carries it.
//
// The pipeline applies the rules in this order:
//
//  1. Normalize fills what a client may leave out: version 0 ("not given") becomes 1, and a
//     zero season becomes the year of the game date.
//  2. ValidateShape checks structure: required fields are present, strings and numbers are in
//     range. The ingest gateway rejects a line that fails it before it reaches the stream.
//  3. CheckConsistency checks that the counts of a well-shaped line agree with each other
//     (no more hits than at bats, and so on). The transformer applies it and dead-letters a
//     line that fails it, so the gateway stays a thin, fast front door.
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

// Normalize fills, in place, the fields whose zero value means "not given":
//
//   - version 0 becomes 1 (a first report needs no version; corrections must carry one);
//   - season 0 becomes the year of game.date, when the date is valid.
//
// It changes nothing else and never fails: call it before ValidateShape. ValidateShape on an
// event that was not normalized rejects version 0 with reason "required". A nil event, or one
// without a game, is left as it is for ValidateShape to report.
func Normalize(ev *statsv1.StatEvent) {
	if ev == nil {
		return
	}
	if ev.GetVersion() == 0 {
		ev.Version = 1
	}
	if g := ev.GetGame(); g != nil && g.GetSeason() == 0 {
		if d, err := parseGameDate(g.GetDate()); err == nil {
			g.Season = int32(d.Year())
		}
	}
}
