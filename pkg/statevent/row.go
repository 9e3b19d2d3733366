package statevent

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
)

// MaxRowTextBytes bounds every text value of a curated row, in bytes of UTF-8: the
// loader's limit (game_id is part of the fact table's primary key, and a btree entry holds
// about 2,700 bytes). The event's own limits are far below it.
const MaxRowTextBytes = 1 << 10

// CheckRow returns why the loader would not store row as it is, in proto field names
// ("player.mlb_id", "game_date"): a missing or out-of-range value it refuses the whole
// request for, or a text value PostgreSQL cannot hold (NUL, invalid UTF-8) or the loader
// dead-letters (over MaxRowTextBytes). None means the row is storable.
//
// The transformer checks every row it builds with it, so that whatever the loader would
// refuse becomes a rejection (a dead letter with the record's bytes) rather than a row that
// fails a batch; the loader applies the same rules (and the database its constraints)
// behind it.
//
// A retraction row (retraction set) needs only its event id, player id, game id and
// version: its name, team, date and opponent may be empty, and its counts must be zero.
func CheckRow(row *warehousev1.BattingGameRow) []Violation {
	if row == nil {
		return []Violation{{Field: "", Reason: "required", Detail: "row is missing"}}
	}
	var vs []Violation
	add := func(field, reason, format string, args ...any) {
		vs = append(vs, Violation{Field: field, Reason: reason, Detail: fmt.Sprintf(format, args...)})
	}
	retraction := row.GetRetraction() != nil
	required := func(field, value string) {
		if value == "" {
			add(field, "required", "%s must not be empty", field)
		}
	}
	required("event_id", row.GetEventId())
	if row.GetVersion() <= 0 {
		add("version", "out_of_range", "version must be positive, got %d", row.GetVersion())
	}
	if p := row.GetPlayer(); p == nil {
		add("player", "required", "player must be set")
	} else {
		if p.GetMlbId() <= 0 {
			add("player.mlb_id", "out_of_range", "player MLB id must be positive, got %d", p.GetMlbId())
		}
		if !retraction {
			required("player.name", p.GetName())
			required("player.team", p.GetTeam())
		}
	}
	required("game_id", row.GetGameId())
	if !retraction || row.GetGameDate() != "" {
		if _, err := parseGameDate(row.GetGameDate()); err != nil {
			add("game_date", "invalid_date", "%q is not a date YYYY-MM-DD", row.GetGameDate())
		}
	}
	if n := row.GetGameNumber(); n < 0 || n > math.MaxInt16 {
		add("game_number", "out_of_range", "must be between 0 and %d, got %d", math.MaxInt16, n)
	}
	if n := row.GetSeason(); (!retraction || n != 0) && (n <= 0 || n > math.MaxInt16) {
		add("season", "out_of_range", "must be between 1 and %d, got %d", math.MaxInt16, n)
	}
	if !retraction {
		required("opponent", row.GetOpponent())
	}
	for _, c := range RowCounts(row) {
		switch {
		case c.Value < 0:
			add(c.Name, "negative", "%s must not be negative, got %d", c.Name, c.Value)
		case retraction && c.Value != 0:
			add(c.Name, "not_allowed", "a retraction row has no counts, %s is %d", c.Name, c.Value)
		}
	}
	for _, ts := range []struct {
		field string
		value *timestamppb.Timestamp
	}{{"source_time", row.GetSourceTime()}, {"accepted_at", row.GetAcceptedAt()}} {
		if ts.value != nil {
			if err := ts.value.CheckValid(); err != nil {
				add(ts.field, "invalid_timestamp", "%s is not a valid timestamp: %v", ts.field, err)
			}
		}
	}
	for _, t := range RowTexts(row) {
		if problem := StorableTextProblem(t.Value, MaxRowTextBytes); problem != "" {
			add(t.Name, "unstorable_text", "%s %s", t.Name, problem)
		}
	}
	return vs
}

// RowValue is one named value of a row.
type RowValue[T any] struct {
	Name  string
	Value T
}

// RowTexts lists every text value of a row the warehouse stores, under its proto field
// name (the position's under position.*). It returns an array, not a slice, so that the
// transformer's check of every row allocates nothing for it.
func RowTexts(row *warehousev1.BattingGameRow) [12]RowValue[string] {
	return [...]RowValue[string]{
		{"event_id", row.GetEventId()}, {"player.name", row.GetPlayer().GetName()}, {"player.team", row.GetPlayer().GetTeam()},
		{"game_id", row.GetGameId()}, {"game_date", row.GetGameDate()}, {"opponent", row.GetOpponent()},
		{"trace_id", row.GetTraceId()}, {"producer", row.GetProducer()}, {"retraction.reason", row.GetRetraction().GetReason()},
		{"position.stream", row.GetPosition().GetStream()}, {"position.shard_id", row.GetPosition().GetShardId()},
		{"position.sequence_number", row.GetPosition().GetSequenceNumber()},
	}
}

// RowCounts lists the counting statistics of a row under their proto field names, in an
// array for the same reason as RowTexts.
func RowCounts(row *warehousev1.BattingGameRow) [21]RowValue[int32] {
	return [...]RowValue[int32]{
		{"plate_appearances", row.GetPlateAppearances()}, {"at_bats", row.GetAtBats()}, {"runs", row.GetRuns()},
		{"hits", row.GetHits()}, {"singles", row.GetSingles()}, {"doubles", row.GetDoubles()},
		{"triples", row.GetTriples()}, {"home_runs", row.GetHomeRuns()}, {"rbi", row.GetRbi()},
		{"base_on_balls", row.GetBaseOnBalls()}, {"intentional_walks", row.GetIntentionalWalks()},
		{"strike_outs", row.GetStrikeOuts()}, {"hit_by_pitch", row.GetHitByPitch()}, {"sac_bunts", row.GetSacBunts()},
		{"sac_flies", row.GetSacFlies()}, {"stolen_bases", row.GetStolenBases()}, {"caught_stealing", row.GetCaughtStealing()},
		{"ground_into_double_play", row.GetGroundIntoDoublePlay()}, {"total_bases", row.GetTotalBases()},
		{"extra_base_hits", row.GetExtraBaseHits()}, {"times_on_base", row.GetTimesOnBase()},
	}
}

// StorableTextProblem says why s cannot be stored as it is in a PostgreSQL text column
// bounded by maxBytes ("" when it can): it holds a NUL byte, is not valid UTF-8, or is
// longer than maxBytes.
func StorableTextProblem(s string, maxBytes int) string {
	switch {
	case strings.IndexByte(s, 0) >= 0:
		return "contains a NUL byte, which PostgreSQL text cannot hold"
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case len(s) > maxBytes:
		return "is " + strconv.Itoa(len(s)) + " bytes long, more than the " + strconv.Itoa(maxBytes) + " the warehouse stores"
	}
	return ""
}
