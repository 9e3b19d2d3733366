package statevent

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
)

func TestValidateShapeAcceptsValidEvent(t *testing.T) {
	ev := validEvent()
	if vs := ValidateShape(ev); len(vs) != 0 {
		t.Fatalf("ValidateShape(valid) = %v, want none", vs)
	}
	// The optional parts may be absent.
	ev.EventId = ""
	ev.Batting.TotalBases = nil
	ev.Game.Season = 0
	ev.Source = ""
	ev.SourceTime = timestamppb.New(timestamppb.Now().AsTime())
	if vs := ValidateShape(ev); len(vs) != 0 {
		t.Fatalf("ValidateShape(valid, optional parts absent) = %v, want none", vs)
	}
}

func TestValidateShape(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(ev *statsv1.StatEvent)
		want   []fieldReason
	}{
		{"event id at max length", func(ev *statsv1.StatEvent) { ev.EventId = strings.Repeat("a", 128) }, nil},
		{"event id with every allowed character", func(ev *statsv1.StatEvent) { ev.EventId = "AZaz09._:-" }, nil},
		{"event id too long", func(ev *statsv1.StatEvent) { ev.EventId = strings.Repeat("a", 129) },
			[]fieldReason{{"eventId", "too_long"}}},
		{"event id with a space", func(ev *statsv1.StatEvent) { ev.EventId = "abc def" },
			[]fieldReason{{"eventId", "invalid_characters"}}},
		{"event id with a slash", func(ev *statsv1.StatEvent) { ev.EventId = "abc/def" },
			[]fieldReason{{"eventId", "invalid_characters"}}},
		{"event id with non-ASCII", func(ev *statsv1.StatEvent) { ev.EventId = "é" },
			[]fieldReason{{"eventId", "invalid_characters"}}},

		{"player missing", func(ev *statsv1.StatEvent) { ev.Player = nil },
			[]fieldReason{{"player", "required"}}},
		{"player mlb id zero", func(ev *statsv1.StatEvent) { ev.Player.MlbId = 0 },
			[]fieldReason{{"player.mlbId", "required"}}},
		{"player mlb id negative", func(ev *statsv1.StatEvent) { ev.Player.MlbId = -5 },
			[]fieldReason{{"player.mlbId", "negative"}}},
		{"player name empty", func(ev *statsv1.StatEvent) { ev.Player.Name = "" },
			[]fieldReason{{"player.name", "required"}}},
		{"player name blank", func(ev *statsv1.StatEvent) { ev.Player.Name = " \t" },
			[]fieldReason{{"player.name", "required"}}},
		{"player name too long", func(ev *statsv1.StatEvent) { ev.Player.Name = strings.Repeat("ü", 129) },
			[]fieldReason{{"player.name", "too_long"}}},
		{"team empty", func(ev *statsv1.StatEvent) { ev.Player.Team = "" },
			[]fieldReason{{"player.team", "required"}}},
		{"team too long", func(ev *statsv1.StatEvent) { ev.Player.Team = strings.Repeat("X", 17) },
			[]fieldReason{{"player.team", "too_long"}}},

		{"game missing", func(ev *statsv1.StatEvent) { ev.Game = nil },
			[]fieldReason{{"game", "required"}}},
		{"game id empty", func(ev *statsv1.StatEvent) { ev.Game.GameId = "" },
			[]fieldReason{{"game.gameId", "required"}}},
		{"game id at max length", func(ev *statsv1.StatEvent) { ev.Game.GameId = strings.Repeat("9", 64) }, nil},
		{"game id too long", func(ev *statsv1.StatEvent) { ev.Game.GameId = strings.Repeat("9", 65) },
			[]fieldReason{{"game.gameId", "too_long"}}},
		{"date empty", func(ev *statsv1.StatEvent) { ev.Game.Date = "" },
			[]fieldReason{{"game.date", "required"}}},
		{"date not ISO", func(ev *statsv1.StatEvent) { ev.Game.Date = "03/20/2024" },
			[]fieldReason{{"game.date", "invalid_date"}}},
		{"date without zero padding", func(ev *statsv1.StatEvent) { ev.Game.Date = "2024-3-20" },
			[]fieldReason{{"game.date", "invalid_date"}}},
		{"date that does not exist", func(ev *statsv1.StatEvent) { ev.Game.Date = "2023-02-29" },
			[]fieldReason{{"game.date", "invalid_date"}}},
		{"date with time", func(ev *statsv1.StatEvent) { ev.Game.Date = "2024-03-20T19:05:00Z" },
			[]fieldReason{{"game.date", "invalid_date"}}},
		{"date before professional baseball", func(ev *statsv1.StatEvent) { ev.Game.Date = "1870-06-01"; ev.Game.Season = 0 },
			[]fieldReason{{"game.date", "out_of_range"}}},
		{"game number 2", func(ev *statsv1.StatEvent) { ev.Game.GameNumber = 2 }, nil},
		{"game number 3", func(ev *statsv1.StatEvent) { ev.Game.GameNumber = 3 },
			[]fieldReason{{"game.gameNumber", "out_of_range"}}},
		{"game number negative", func(ev *statsv1.StatEvent) { ev.Game.GameNumber = -1 },
			[]fieldReason{{"game.gameNumber", "out_of_range"}}},
		{"opponent empty", func(ev *statsv1.StatEvent) { ev.Game.Opponent = "" },
			[]fieldReason{{"game.opponent", "required"}}},
		{"home away unspecified", func(ev *statsv1.StatEvent) { ev.Game.HomeAway = statsv1.HomeAway_HOME_AWAY_UNSPECIFIED },
			[]fieldReason{{"game.homeAway", "required"}}},
		{"home away unknown number", func(ev *statsv1.StatEvent) { ev.Game.HomeAway = 7 },
			[]fieldReason{{"game.homeAway", "invalid_value"}}},
		{"season before 1871", func(ev *statsv1.StatEvent) { ev.Game.Season = 1870 },
			[]fieldReason{{"game.season", "out_of_range"}}},
		{"season after 2100", func(ev *statsv1.StatEvent) { ev.Game.Season = 2101 },
			[]fieldReason{{"game.season", "out_of_range"}}},
		{"season not the date's year", func(ev *statsv1.StatEvent) { ev.Game.Season = 2023 },
			[]fieldReason{{"game.season", "season_mismatch"}}},
		{"season with an invalid date is not compared", func(ev *statsv1.StatEvent) { ev.Game.Date = "x"; ev.Game.Season = 2023 },
			[]fieldReason{{"game.date", "invalid_date"}}},

		{"batting missing", func(ev *statsv1.StatEvent) { ev.Batting = nil },
			[]fieldReason{{"batting", "required"}}},
		{"total bases absent", func(ev *statsv1.StatEvent) { ev.Batting.TotalBases = nil }, nil},
		{"total bases negative", func(ev *statsv1.StatEvent) { ev.Batting.TotalBases = proto.Int32(-1) },
			[]fieldReason{{"batting.totalBases", "negative"}}},
		{"total bases at bound", func(ev *statsv1.StatEvent) { ev.Batting.TotalBases = proto.Int32(60) }, nil},
		{"total bases above bound", func(ev *statsv1.StatEvent) { ev.Batting.TotalBases = proto.Int32(61) },
			[]fieldReason{{"batting.totalBases", "too_large"}}},
		{"plate appearances at bound", func(ev *statsv1.StatEvent) { ev.Batting.PlateAppearances = proto.Int32(15) }, nil},
		{"plate appearances above bound", func(ev *statsv1.StatEvent) { ev.Batting.PlateAppearances = proto.Int32(16) },
			[]fieldReason{{"batting.plateAppearances", "too_large"}}},
		{"rbi at bound", func(ev *statsv1.StatEvent) { ev.Batting.Rbi = proto.Int32(30) }, nil},
		{"rbi above bound", func(ev *statsv1.StatEvent) { ev.Batting.Rbi = proto.Int32(31) },
			[]fieldReason{{"batting.rbi", "too_large"}}},
		{"two counts missing, in field order", func(ev *statsv1.StatEvent) { ev.Batting.SacFlies = nil; ev.Batting.AtBats = nil },
			[]fieldReason{{"batting.atBats", "required"}, {"batting.sacFlies", "required"}}},

		{"version zero", func(ev *statsv1.StatEvent) { ev.Version = 0 },
			[]fieldReason{{"version", "required"}}},
		{"version negative", func(ev *statsv1.StatEvent) { ev.Version = -2 },
			[]fieldReason{{"version", "negative"}}},
		{"source time invalid", func(ev *statsv1.StatEvent) { ev.SourceTime = &timestamppb.Timestamp{Nanos: -1} },
			[]fieldReason{{"sourceTime", "invalid_timestamp"}}},
		{"source too long", func(ev *statsv1.StatEvent) { ev.Source = strings.Repeat("s", 65) },
			[]fieldReason{{"source", "too_long"}}},

		{"several problems, in field order", func(ev *statsv1.StatEvent) {
			ev.EventId = "bad id"
			ev.Player.Name = ""
			ev.Game.HomeAway = statsv1.HomeAway_HOME_AWAY_UNSPECIFIED
			ev.Batting.Hits = proto.Int32(-1)
			ev.Version = 0
		}, []fieldReason{
			{"eventId", "invalid_characters"},
			{"player.name", "required"},
			{"game.homeAway", "required"},
			{"batting.hits", "negative"},
			{"version", "required"},
		}},
		{"empty event", func(ev *statsv1.StatEvent) { proto.Reset(ev) }, []fieldReason{
			{"player", "required"}, {"game", "required"}, {"batting", "required"}, {"version", "required"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := validEvent()
			tc.mutate(ev)
			before := proto.Clone(ev)
			assertViolations(t, ValidateShape(ev), tc.want)
			if !proto.Equal(before, ev) {
				t.Errorf("ValidateShape changed the event")
			}
		})
	}
}

// Every counting field except total bases is required and bounded: check each one so that a
// field forgotten in the table fails here.
func TestValidateShapeEveryCountingField(t *testing.T) {
	for _, f := range countFields {
		t.Run(f.path, func(t *testing.T) {
			cases := []struct {
				value *int32
				want  []fieldReason
			}{
				{proto.Int32(-1), []fieldReason{{f.path, "negative"}}},
				{proto.Int32(f.max + 1), []fieldReason{{f.path, "too_large"}}},
				{proto.Int32(f.max), nil},
				{proto.Int32(0), nil},
			}
			if f.optional {
				cases = append(cases, struct {
					value *int32
					want  []fieldReason
				}{nil, nil})
			} else {
				cases = append(cases, struct {
					value *int32
					want  []fieldReason
				}{nil, []fieldReason{{f.path, "required"}}})
			}
			for _, c := range cases {
				ev := validEvent()
				setCount(t, ev.Batting, f.path, c.value)
				assertViolations(t, ValidateShape(ev), c.want)
			}
		})
	}
}

// setCount sets a counting field by its protojson path through protoreflect, independently of
// the countFields table under test.
func setCount(t *testing.T, b *statsv1.BattingLine, path string, v *int32) {
	t.Helper()
	name := strings.TrimPrefix(path, "batting.")
	fd := b.ProtoReflect().Descriptor().Fields().ByJSONName(name)
	if fd == nil {
		t.Fatalf("no BattingLine field with JSON name %q", name)
	}
	if v == nil {
		b.ProtoReflect().Clear(fd)
		return
	}
	b.ProtoReflect().Set(fd, protoreflect.ValueOfInt32(*v))
}

func TestCountFieldsCoverBattingLine(t *testing.T) {
	fields := (&statsv1.BattingLine{}).ProtoReflect().Descriptor().Fields()
	if fields.Len() != len(countFields) {
		t.Fatalf("BattingLine has %d fields, countFields lists %d", fields.Len(), len(countFields))
	}
	for i := range fields.Len() {
		fd := fields.Get(i)
		if want := "batting." + fd.JSONName(); countFields[i].path != want {
			t.Errorf("countFields[%d] = %q, want %q", i, countFields[i].path, want)
		}
		if optional := fd.Name() == "total_bases"; countFields[i].optional != optional {
			t.Errorf("countFields[%d] optional = %v, want %v", i, countFields[i].optional, optional)
		}
		// The getter must read the field the path names.
		b := &statsv1.BattingLine{}
		b.ProtoReflect().Set(fd, protoreflect.ValueOfInt32(int32(100+i)))
		if got := countFields[i].get(b); got == nil || *got != int32(100+i) {
			t.Errorf("countFields[%d] (%s) getter reads another field", i, countFields[i].path)
		}
	}
}

func TestValidateShapeNil(t *testing.T) {
	assertViolations(t, ValidateShape(nil), []fieldReason{{"", "required"}})
}

func TestNormalize(t *testing.T) {
	ev := validEvent()
	ev.Version = 0
	ev.Game.Season = 0
	Normalize(ev)
	if ev.Version != 1 {
		t.Errorf("version = %d, want 1", ev.Version)
	}
	if ev.Game.Season != 2024 {
		t.Errorf("season = %d, want 2024", ev.Game.Season)
	}
	if vs := ValidateShape(ev); len(vs) != 0 {
		t.Errorf("ValidateShape(normalized) = %v, want none", vs)
	}

	// Given values are kept, even wrong ones: validation reports them.
	ev = validEvent()
	ev.Version = 7
	ev.Game.Season = 2023
	Normalize(ev)
	if ev.Version != 7 || ev.Game.Season != 2023 {
		t.Errorf("Normalize changed given values: version %d, season %d", ev.Version, ev.Game.Season)
	}

	// An invalid date leaves the season unset.
	ev = validEvent()
	ev.Game.Season = 0
	ev.Game.Date = "2024-13-01"
	Normalize(ev)
	if ev.Game.Season != 0 {
		t.Errorf("season = %d from an invalid date, want 0", ev.Game.Season)
	}

	// Incomplete events do not crash it.
	Normalize(nil)
	Normalize(&statsv1.StatEvent{})
}
