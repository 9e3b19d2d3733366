package statevent

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
)

// "LAN202409290 " must be the game "LAN202409290", never a second one; text is trimmed and
// composed (NFC), team codes upper-cased.
func TestNormalizeText(t *testing.T) {
	ev := validEvent()
	ev.EventId = " e-1\t"
	ev.Player.Name = "  Jose\u0301 Ramírez\n"
	ev.Player.Team = " lad "
	ev.Game.GameId = "LAN202409290 "
	ev.Game.Date = " 2024-03-20"
	ev.Game.Opponent = "sd"
	ev.Source = "\u00a0replay "
	Normalize(ev)
	for got, want := range map[string]string{
		ev.EventId: "e-1", ev.Player.Name: "José Ramírez", ev.Player.Team: "LAD", ev.Game.GameId: "LAN202409290",
		ev.Game.Date: "2024-03-20", ev.Game.Opponent: "SD", ev.Source: "replay",
	} {
		if got != want {
			t.Errorf("normalized %q, want %q", got, want)
		}
	}
	if vs := ValidateShape(ev); len(vs) != 0 {
		t.Errorf("normalized event refused: %v", vs)
	}
	again := proto.CloneOf(ev)
	Normalize(again)
	if !proto.Equal(ev, again) {
		t.Errorf("Normalize is not idempotent: %v then %v", ev, again)
	}
	// Upper-casing a code never leaves it outside NFC, so Normalize stays idempotent.
	code := validEvent()
	code.Player.Team = "i\u0307"
	Normalize(code)
	once := code.Player.Team
	Normalize(code)
	if code.Player.Team != once || once != "\u0130" {
		t.Errorf("team %q normalized to %q then %q, want U+0130 both times", "i\u0307", once, code.Player.Team)
	}
	// Invalid UTF-8 is left for ValidateShape to refuse, not repaired.
	bad := validEvent()
	bad.Player.Name = "A\xffB "
	Normalize(bad)
	if bad.Player.Name != "A\xffB " {
		t.Errorf("invalid UTF-8 was changed to %q", bad.Player.Name)
	}
	assertViolations(t, ValidateShape(bad), []fieldReason{{"player.name", "invalid_utf8"}})
}

func TestValidateShapeText(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(ev *statsv1.StatEvent)
		want   []fieldReason
	}{
		{"NUL in name", func(ev *statsv1.StatEvent) { ev.Player.Name = "Sho\x00hei" }, []fieldReason{{"player.name", "invalid_characters"}}},
		{"newline in name", func(ev *statsv1.StatEvent) { ev.Player.Name = "Sho\nhei" }, []fieldReason{{"player.name", "invalid_characters"}}},
		{"bidi override in name", func(ev *statsv1.StatEvent) { ev.Player.Name = "Sho\u202ehei" }, []fieldReason{{"player.name", "invalid_characters"}}},
		{"zero-width space in source", func(ev *statsv1.StatEvent) { ev.Source = "re\u200bplay" }, []fieldReason{{"source", "invalid_characters"}}},
		{"C1 control in source", func(ev *statsv1.StatEvent) { ev.Source = "re\u0085play" }, []fieldReason{{"source", "invalid_characters"}}},
		{"zero-width joiner in name", func(ev *statsv1.StatEvent) { ev.Player.Name = "क्\u200dष" }, nil},
		{"invalid UTF-8 in team", func(ev *statsv1.StatEvent) { ev.Player.Team = "L\xffD" }, []fieldReason{{"player.team", "invalid_utf8"}}},
		{"NUL in game id", func(ev *statsv1.StatEvent) { ev.Game.GameId = "LAN\x00" }, []fieldReason{{"game.gameId", "invalid_characters"}}},
		{"space inside game id", func(ev *statsv1.StatEvent) { ev.Game.GameId = "LAN 2024" }, []fieldReason{{"game.gameId", "invalid_format"}}},
		{"game id starting with a dash", func(ev *statsv1.StatEvent) { ev.Game.GameId = "-LAN" }, []fieldReason{{"game.gameId", "invalid_format"}}},
		{"game id non-ASCII", func(ev *statsv1.StatEvent) { ev.Game.GameId = "LAN２０２４" }, []fieldReason{{"game.gameId", "invalid_format"}}},
		{"MLB gamePk game id", func(ev *statsv1.StatEvent) { ev.Game.GameId = "745001" }, nil},
		{"team of one letter", func(ev *statsv1.StatEvent) { ev.Player.Team = "L" }, []fieldReason{{"player.team", "invalid_format"}}},
		{"team of five letters", func(ev *statsv1.StatEvent) { ev.Player.Team = "DODGR" }, []fieldReason{{"player.team", "invalid_format"}}},
		{"team with a digit", func(ev *statsv1.StatEvent) { ev.Player.Team = "BL1" }, nil},
		{"opponent lower-case (not normalized)", func(ev *statsv1.StatEvent) { ev.Game.Opponent = "sd" }, []fieldReason{{"game.opponent", "invalid_format"}}},
		{"opponent with a tab", func(ev *statsv1.StatEvent) { ev.Game.Opponent = "S\tD" }, []fieldReason{{"game.opponent", "invalid_characters"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := validEvent()
			tc.mutate(ev)
			assertViolations(t, ValidateShape(ev), tc.want)
		})
	}
}

func validRetraction() *statsv1.StatEvent {
	return &statsv1.StatEvent{
		EventId:    "r-1",
		Player:     &statsv1.Player{MlbId: 660271},
		Game:       &statsv1.Game{GameId: "SDN202403200"},
		Version:    2,
		Retraction: &statsv1.Retraction{Reason: "reported for the wrong player"},
	}
}

func TestValidateShapeRetraction(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(ev *statsv1.StatEvent)
		want   []fieldReason
	}{
		{"minimal", func(*statsv1.StatEvent) {}, nil},
		{"with the rest of the player and game", func(ev *statsv1.StatEvent) {
			ev.Player.Name, ev.Player.Team = "Shohei Ohtani", "LAD"
			ev.Game.Date, ev.Game.Opponent, ev.Game.HomeAway = "2024-03-20", "SD", statsv1.HomeAway_HOME_AWAY_AWAY
		}, nil},
		{"batting line", func(ev *statsv1.StatEvent) { ev.Batting = validEvent().Batting }, []fieldReason{{"batting", "not_allowed"}}},
		{"empty batting line", func(ev *statsv1.StatEvent) { ev.Batting = &statsv1.BattingLine{} }, []fieldReason{{"batting", "not_allowed"}}},
		{"no reason", func(ev *statsv1.StatEvent) { ev.Retraction.Reason = "" }, []fieldReason{{"retraction.reason", "required"}}},
		{"reason too long", func(ev *statsv1.StatEvent) { ev.Retraction.Reason = strings.Repeat("r", 513) }, []fieldReason{{"retraction.reason", "too_long"}}},
		{"reason with NUL", func(ev *statsv1.StatEvent) { ev.Retraction.Reason = "a\x00" }, []fieldReason{{"retraction.reason", "invalid_characters"}}},
		{"no version", func(ev *statsv1.StatEvent) { ev.Version = 0 }, []fieldReason{{"version", "required"}}},
		{"no player id", func(ev *statsv1.StatEvent) { ev.Player.MlbId = 0 }, []fieldReason{{"player.mlbId", "required"}}},
		{"no game id", func(ev *statsv1.StatEvent) { ev.Game.GameId = "" }, []fieldReason{{"game.gameId", "required"}}},
		{"no game", func(ev *statsv1.StatEvent) { ev.Game = nil }, []fieldReason{{"game", "required"}}},
		{"bad date when given", func(ev *statsv1.StatEvent) { ev.Game.Date = "2024-02-30" }, []fieldReason{{"game.date", "invalid_date"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := validRetraction()
			tc.mutate(ev)
			assertViolations(t, ValidateShape(ev), tc.want)
		})
	}
	// Normalize does not give a retraction a version: it must name one above the line.
	ev := validRetraction()
	ev.Version = 0
	Normalize(ev)
	if ev.Version != 0 {
		t.Errorf("Normalize gave a retraction version %d", ev.Version)
	}
	if vs := CheckConsistency(validRetraction()); len(vs) != 0 {
		t.Errorf("CheckConsistency(retraction) = %v, want none", vs)
	}
}

func TestCheckVersionCeiling(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ceiling := at.UnixMicro() + (5 * time.Minute).Microseconds()
	if got := VersionCeiling(at); got != ceiling {
		t.Fatalf("VersionCeiling = %d, want %d", got, ceiling)
	}
	for _, tc := range []struct {
		version int64
		refused bool
	}{{1, false}, {at.UnixMilli(), false}, {ceiling, false}, {ceiling + 1, true}, {1<<63 - 1, true}} {
		ev := validEvent()
		ev.Version = tc.version
		vs := CheckVersionCeiling(ev, at)
		if got := len(vs) == 1 && vs[0].Field == "version" && vs[0].Reason == ReasonVersionAboveCeiling; got != tc.refused {
			t.Errorf("version %d: violations %v, refused want %v", tc.version, vs, tc.refused)
		}
	}
}

func TestCheckRow(t *testing.T) {
	line := func() *warehousev1.BattingGameRow {
		return &warehousev1.BattingGameRow{EventId: "e", Version: 1, Player: &statsv1.Player{MlbId: 1, Name: "N", Team: "LAD"},
			GameId: "G1", GameDate: "2024-03-20", Season: 2024, Opponent: "SD", Hits: 1, AtBats: 1}
	}
	retraction := func() *warehousev1.BattingGameRow {
		return &warehousev1.BattingGameRow{EventId: "r", Version: 2, Player: &statsv1.Player{MlbId: 1}, GameId: "G1",
			Retraction: &statsv1.Retraction{Reason: "why"}, Producer: "demo"}
	}
	tests := []struct {
		name string
		row  *warehousev1.BattingGameRow
		want []fieldReason
	}{
		{"line", line(), nil},
		{"retraction", retraction(), nil},
		{"line without team", func() *warehousev1.BattingGameRow { r := line(); r.Player.Team = ""; return r }(), []fieldReason{{"player.team", "required"}}},
		{"line with NUL in game id", func() *warehousev1.BattingGameRow { r := line(); r.GameId = "G\x00"; return r }(), []fieldReason{{"game_id", "unstorable_text"}}},
		{"line with a negative count", func() *warehousev1.BattingGameRow { r := line(); r.Singles = -1; return r }(), []fieldReason{{"singles", "negative"}}},
		{"line with an overlong producer", func() *warehousev1.BattingGameRow {
			r := line()
			r.Producer = strings.Repeat("p", MaxRowTextBytes+1)
			return r
		}(), []fieldReason{{"producer", "unstorable_text"}}},
		{"retraction with a count", func() *warehousev1.BattingGameRow { r := retraction(); r.Hits = 1; return r }(), []fieldReason{{"hits", "not_allowed"}}},
		{"retraction with invalid UTF-8 reason", func() *warehousev1.BattingGameRow {
			r := retraction()
			r.Retraction.Reason = "\xff"
			return r
		}(), []fieldReason{{"retraction.reason", "unstorable_text"}}},
		{"nil", nil, []fieldReason{{"", "required"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { assertViolations(t, CheckRow(tc.row), tc.want) })
	}
}
