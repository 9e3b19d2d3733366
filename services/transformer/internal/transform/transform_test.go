package transform

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

const (
	testTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	testTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
)

var testAcceptedAt = time.Date(2024, 3, 21, 5, 6, 7, 890000000, time.UTC)

// validEvent is a complete, consistent line: 2 for 4 with a double and a home run, a walk,
// a strikeout and a stolen base.
func validEvent() *statsv1.StatEvent {
	i := proto.Int32
	return &statsv1.StatEvent{
		EventId: "0190f5a2-7b1c-7cde-8a3b-1234567890ab",
		Player:  &statsv1.Player{MlbId: 660271, Name: "Shohei Ohtani", Team: "LAD"},
		Game: &statsv1.Game{
			GameId: "SDN202403200", Date: "2024-03-20", GameNumber: 1, Opponent: "SD",
			HomeAway: statsv1.HomeAway_HOME_AWAY_HOME, Season: 2024,
		},
		Batting: &statsv1.BattingLine{
			PlateAppearances: i(5), AtBats: i(4), Runs: i(1), Hits: i(2), Doubles: i(1), Triples: i(0),
			HomeRuns: i(1), Rbi: i(3), BaseOnBalls: i(1), IntentionalWalks: i(0), StrikeOuts: i(1),
			HitByPitch: i(0), SacBunts: i(0), SacFlies: i(0), StolenBases: i(1), CaughtStealing: i(0),
			GroundIntoDoublePlay: i(0), TotalBases: i(6),
		},
		Version:    3,
		SourceTime: timestamppb.New(time.Date(2024, 3, 21, 4, 0, 0, 0, time.UTC)),
		Source:     "mlb-statsapi",
	}
}

func position(seq int) *streamv1.RecordPosition {
	return &streamv1.RecordPosition{
		Stream: "boxscore-stats", ShardId: "shardId-000000000000", SequenceNumber: fmt.Sprintf("4959%016d", seq),
	}
}

func record(t *testing.T, seq int, ev *statsv1.StatEvent, traceContext map[string]string) *transformv1.SourceRecord {
	t.Helper()
	data, err := statevent.EncodeEnvelope(ev, testAcceptedAt, traceContext)
	if err != nil {
		t.Fatalf("EncodeEnvelope: %v", err)
	}
	return &transformv1.SourceRecord{Position: position(seq), PartitionKey: "660271", Data: data}
}

func rawRecord(seq int, data []byte) *transformv1.SourceRecord {
	return &transformv1.SourceRecord{Position: position(seq), Data: data}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

// transformOne runs Transform on one record and checks it gives exactly one outcome.
func transformOne(t *testing.T, rec *transformv1.SourceRecord) (*warehousev1.BattingGameRow, *warehousev1.Rejection) {
	t.Helper()
	resp := Transform([]*transformv1.SourceRecord{rec})
	switch {
	case len(resp.Rows) == 1 && len(resp.Rejections) == 0:
		return resp.Rows[0], nil
	case len(resp.Rows) == 0 && len(resp.Rejections) == 1:
		return nil, resp.Rejections[0]
	}
	t.Fatalf("one record gave %d rows and %d rejections", len(resp.Rows), len(resp.Rejections))
	return nil, nil
}

func TestTransformMapsEveryField(t *testing.T) {
	ev := validEvent()
	data, err := statevent.EncodeProducerEnvelope(ev, "demo", testAcceptedAt, map[string]string{"traceparent": testTraceparent, "tracestate": "x=1"})
	if err != nil {
		t.Fatal(err)
	}
	row, rej := transformOne(t, &transformv1.SourceRecord{Position: position(1), PartitionKey: "660271", Data: data})
	if rej != nil {
		t.Fatalf("rejected: %v", rej)
	}
	want := &warehousev1.BattingGameRow{
		EventId:              "0190f5a2-7b1c-7cde-8a3b-1234567890ab",
		Version:              3,
		Player:               &statsv1.Player{MlbId: 660271, Name: "Shohei Ohtani", Team: "LAD"},
		GameId:               "SDN202403200",
		GameDate:             "2024-03-20",
		GameNumber:           1,
		Season:               2024,
		Opponent:             "SD",
		Home:                 true,
		PlateAppearances:     5,
		AtBats:               4,
		Runs:                 1,
		Hits:                 2,
		Singles:              0,
		Doubles:              1,
		Triples:              0,
		HomeRuns:             1,
		Rbi:                  3,
		BaseOnBalls:          1,
		IntentionalWalks:     0,
		StrikeOuts:           1,
		HitByPitch:           0,
		SacBunts:             0,
		SacFlies:             0,
		StolenBases:          1,
		CaughtStealing:       0,
		GroundIntoDoublePlay: 0,
		TotalBases:           6,
		ExtraBaseHits:        2,
		TimesOnBase:          3,
		SourceTime:           timestamppb.New(time.Date(2024, 3, 21, 4, 0, 0, 0, time.UTC)),
		AcceptedAt:           timestamppb.New(testAcceptedAt),
		Position:             position(1),
		TraceId:              testTraceID,
		Producer:             "demo",
	}
	if !proto.Equal(row, want) {
		t.Fatalf("row =\n%v\nwant\n%v", protojson.Format(row), protojson.Format(want))
	}
	// Every field of the row is set by the mapping: a field added to the proto and
	// forgotten in buildRow shows up here as unset.
	unset := []string{}
	fields := row.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !row.ProtoReflect().Has(fd) {
			unset = append(unset, string(fd.Name()))
		}
	}
	// These are zero in this line, and proto3 does not track presence of zero scalars; a
	// line is no retraction.
	zeroHere := "singles triples intentional_walks hit_by_pitch sac_bunts sac_flies caught_stealing ground_into_double_play retraction"
	for _, name := range unset {
		if !strings.Contains(" "+zeroHere+" ", " "+name+" ") {
			t.Errorf("row field %s is not set", name)
		}
	}
}

// The counts that are zero in validEvent are mapped to the right field too.
func TestTransformMapsEachCountToItsField(t *testing.T) {
	i := proto.Int32
	ev := validEvent()
	b := ev.Batting
	// A line where the counts differ from each other: PA 15, AB 9 (H 4 = 1B 1 + 2B 1 + 3B 1 + HR 1,
	// SO 2, GIDP 3), BB 2 (IBB 1), HBP 1, SH 1, SF 2, R 5, RBI 8, SB 6, CS 7.
	b.PlateAppearances, b.AtBats, b.Hits, b.Doubles, b.Triples, b.HomeRuns = i(15), i(9), i(4), i(1), i(1), i(1)
	b.StrikeOuts, b.GroundIntoDoublePlay, b.BaseOnBalls, b.IntentionalWalks = i(2), i(3), i(2), i(1)
	b.HitByPitch, b.SacBunts, b.SacFlies, b.Runs, b.Rbi, b.StolenBases, b.CaughtStealing = i(1), i(1), i(2), i(5), i(8), i(6), i(7)
	b.TotalBases = nil
	row, rej := transformOne(t, record(t, 1, ev, nil))
	if rej != nil {
		t.Fatalf("rejected: %v", rej)
	}
	got := []int32{row.PlateAppearances, row.AtBats, row.Hits, row.Doubles, row.Triples, row.HomeRuns,
		row.StrikeOuts, row.GroundIntoDoublePlay, row.BaseOnBalls, row.IntentionalWalks, row.HitByPitch,
		row.SacBunts, row.SacFlies, row.Runs, row.Rbi, row.StolenBases, row.CaughtStealing,
		row.Singles, row.TotalBases, row.ExtraBaseHits, row.TimesOnBase}
	want := []int32{15, 9, 4, 1, 1, 1, 2, 3, 2, 1, 1, 1, 2, 5, 8, 6, 7,
		1, 1 + 2 + 3 + 4, 3, 4 + 2 + 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("counts = %v, want %v", got, want)
	}
	if row.TraceId != "" {
		t.Errorf("trace id = %q without trace context, want empty", row.TraceId)
	}
}

func TestTransformNormalizes(t *testing.T) {
	ev := validEvent()
	ev.Version = 0
	ev.Game.Season = 0
	row, rej := transformOne(t, record(t, 1, ev, nil))
	if rej != nil {
		t.Fatalf("rejected: %v", rej)
	}
	if row.Version != 1 || row.Season != 2024 {
		t.Errorf("version %d, season %d; want 1 and 2024", row.Version, row.Season)
	}
}

func TestTransformDecodeRejections(t *testing.T) {
	payload := mustMarshal(t, validEvent())
	tests := []struct {
		name        string
		data        []byte
		wantReason  string
		wantEventID string
	}{
		{"garbage", []byte("\xff\xfe garbage"), statevent.ReasonEnvelopeUndecodable, ""},
		{"json content type", mustMarshal(t, &streamv1.Envelope{ContentType: "application/json", Payload: []byte(`{}`), EventId: "e-1"}),
			statevent.ReasonUnknownContentType, "e-1"},
		{"payload not an event", mustMarshal(t, &streamv1.Envelope{ContentType: statevent.ContentTypeStatEventProto, Payload: payload[:len(payload)-2], EventId: "e-2"}),
			statevent.ReasonPayloadUndecodable, "e-2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, rej := transformOne(t, rawRecord(7, tc.data))
			if rej == nil {
				t.Fatal("got a row")
			}
			if rej.Stage != StageDecode || rej.Reason != tc.wantReason || rej.EventId != tc.wantEventID {
				t.Errorf("rejection stage/reason/event = %q/%q/%q, want decode/%q/%q", rej.Stage, rej.Reason, rej.EventId, tc.wantReason, tc.wantEventID)
			}
			if string(rej.Payload) != string(tc.data) {
				t.Errorf("payload is not the raw record data")
			}
			if !proto.Equal(rej.Position, position(7)) {
				t.Errorf("position = %v", rej.Position)
			}
			if rej.Detail == "" {
				t.Errorf("no detail")
			}
		})
	}
}

func TestTransformValidateRejections(t *testing.T) {
	i := proto.Int32
	tests := []struct {
		name        string
		mutate      func(ev *statsv1.StatEvent)
		envEventID  *string // overrides the envelope's event id when set
		wantReason  string
		wantField   string
		wantDetail  []string // substrings
		wantEventID string
	}{
		{name: "shape problems, all listed",
			mutate:     func(ev *statsv1.StatEvent) { ev.Player.Name = ""; ev.Batting.Rbi = nil; ev.Batting.Hits = i(9) },
			wantReason: "required", wantField: "player.name",
			wantDetail:  []string{"player.name", "batting.rbi", "(required)"},
			wantEventID: "0190f5a2-7b1c-7cde-8a3b-1234567890ab"},
		{name: "consistency is checked only on sound shapes",
			mutate:     func(ev *statsv1.StatEvent) { ev.Game.Opponent = ""; ev.Batting.Hits = i(9) },
			wantReason: "required", wantField: "game.opponent",
			wantDetail:  []string{"game.opponent"},
			wantEventID: "0190f5a2-7b1c-7cde-8a3b-1234567890ab"},
		{name: "consistency problems, all listed",
			mutate:     func(ev *statsv1.StatEvent) { ev.Batting.Hits = i(5); ev.Batting.IntentionalWalks = i(2) },
			wantReason: "hits_exceed_at_bats", wantField: "batting.hits",
			wantDetail:  []string{"hits_exceed_at_bats", "intentional_walks_exceed_walks", "total_bases_mismatch"},
			wantEventID: "0190f5a2-7b1c-7cde-8a3b-1234567890ab"},
		{name: "no event id anywhere",
			mutate:     func(ev *statsv1.StatEvent) { ev.EventId = "" },
			wantReason: "required", wantField: "eventId", wantDetail: []string{"eventId"}},
		{name: "event id differs from the envelope's",
			mutate:     func(ev *statsv1.StatEvent) {},
			envEventID: proto.String("other-id"),
			wantReason: ReasonEventIDMismatch, wantField: "eventId", wantDetail: []string{"other-id"},
			wantEventID: "other-id"},
		// A crafted record: without the text check it became a fact row with a NUL in its
		// event id, which PostgreSQL cannot store.
		{name: "NUL in the envelope's event id",
			mutate:     func(ev *statsv1.StatEvent) { ev.EventId = "" },
			envEventID: proto.String("evt-\x00-1"),
			wantReason: ReasonInvalidText, wantField: "envelope.eventId", wantDetail: []string{"U+0000", "(invalid_text)"},
			wantEventID: "evt-\x00-1"},
		{name: "NUL in the player's name",
			mutate:     func(ev *statsv1.StatEvent) { ev.Player.Name = "Shohei\x00Ohtani" },
			wantReason: ReasonInvalidText, wantField: "player.name", wantDetail: []string{"player.name holds the control character U+0000 at byte 6"},
			wantEventID: "0190f5a2-7b1c-7cde-8a3b-1234567890ab"},
		{name: "control characters in team, game id and opponent, all listed",
			mutate: func(ev *statsv1.StatEvent) {
				ev.Player.Team = "LA\x1bD"
				ev.Game.GameId = "SDN\n202403200"
				ev.Game.Opponent = "S\u0085D"
			},
			wantReason: ReasonInvalidText, wantField: "player.team",
			wantDetail:  []string{"player.team", "game.gameId", "game.opponent", "U+0085"},
			wantEventID: "0190f5a2-7b1c-7cde-8a3b-1234567890ab"},
		{name: "overlong envelope event id",
			mutate:     func(ev *statsv1.StatEvent) { ev.EventId = "" },
			envEventID: proto.String(strings.Repeat("e", statevent.MaxEventIDLength+1)),
			wantReason: ReasonInvalidText, wantField: "envelope.eventId", wantDetail: []string{"at most 128"},
			wantEventID: strings.Repeat("e", statevent.MaxEventIDLength+1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := validEvent()
			tc.mutate(ev)
			rec := record(t, 3, ev, nil)
			if tc.envEventID != nil {
				rec = rewriteEnvelope(t, rec, func(env *streamv1.Envelope) { env.EventId = *tc.envEventID })
			}
			_, rej := transformOne(t, rec)
			if rej == nil {
				t.Fatal("got a row")
			}
			if rej.Stage != StageValidate || rej.Reason != tc.wantReason || rej.Field != tc.wantField {
				t.Errorf("stage/reason/field = %q/%q/%q, want validate/%q/%q", rej.Stage, rej.Reason, rej.Field, tc.wantReason, tc.wantField)
			}
			for _, s := range tc.wantDetail {
				if !strings.Contains(rej.Detail, s) {
					t.Errorf("detail %q does not mention %q", rej.Detail, s)
				}
			}
			if rej.EventId != tc.wantEventID {
				t.Errorf("event id = %q, want %q", rej.EventId, tc.wantEventID)
			}
			if rej.EventVersion != ev.GetVersion() {
				t.Errorf("event version = %d, want the event's %d", rej.EventVersion, ev.GetVersion())
			}
			if string(rej.Payload) != string(rec.Data) || !proto.Equal(rej.Position, rec.Position) {
				t.Errorf("payload or position not carried over")
			}
		})
	}
}

func TestTransformEventIDFromEnvelope(t *testing.T) {
	ev := validEvent()
	ev.EventId = ""
	rec := rewriteEnvelope(t, record(t, 1, ev, nil), func(env *streamv1.Envelope) { env.EventId = "from-envelope" })
	row, rej := transformOne(t, rec)
	if rej != nil {
		t.Fatalf("rejected: %v", rej)
	}
	if row.EventId != "from-envelope" {
		t.Errorf("event id = %q", row.EventId)
	}
}

func rewriteEnvelope(t *testing.T, rec *transformv1.SourceRecord, change func(*streamv1.Envelope)) *transformv1.SourceRecord {
	t.Helper()
	env := &streamv1.Envelope{}
	if err := proto.Unmarshal(rec.Data, env); err != nil {
		t.Fatal(err)
	}
	change(env)
	rec.Data = mustMarshal(t, env)
	return rec
}

func TestTraceID(t *testing.T) {
	tests := []struct {
		name string
		tc   map[string]string
		want string
	}{
		{"valid", map[string]string{"traceparent": testTraceparent}, testTraceID},
		{"not sampled", map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}, testTraceID},
		{"nil", nil, ""},
		{"absent", map[string]string{"baggage": "a=b"}, ""},
		{"empty", map[string]string{"traceparent": ""}, ""},
		{"short trace id", map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"}, ""},
		{"not hex", map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01"}, ""},
		{"uppercase", map[string]string{"traceparent": "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"}, ""},
		{"zero trace id", map[string]string{"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, ""},
		{"zero span id", map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"}, ""},
		{"forbidden version ff", map[string]string{"traceparent": "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, ""},
		{"missing flags", map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"}, ""},
		{"garbage", map[string]string{"traceparent": "hello"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := TraceID(tc.tc); got != tc.want {
				t.Errorf("TraceID(%v) = %q, want %q", tc.tc, got, tc.want)
			}
		})
	}
}

// testdataCase is one line of testdata/lines.json: an event as a client sends it (protojson)
// and the row or rejection it must become.
type testdataCase struct {
	Name      string          `json:"name"`
	Event     json.RawMessage `json:"event"`
	Row       json.RawMessage `json:"row"`
	Rejection *struct {
		Reason string `json:"reason"`
		Field  string `json:"field"`
	} `json:"rejection"`
}

func TestTransformTestdata(t *testing.T) {
	raw, err := os.ReadFile("testdata/lines.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []testdataCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatalf("parse testdata: %v", err)
	}
	if len(cases) == 0 {
		t.Fatal("no cases in testdata")
	}
	for n, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			ev := &statsv1.StatEvent{}
			if err := protojson.Unmarshal(tc.Event, ev); err != nil {
				t.Fatalf("event: %v", err)
			}
			row, rej := transformOne(t, record(t, n, ev, nil))
			switch {
			case tc.Rejection != nil:
				if rej == nil {
					t.Fatalf("got row %v, want rejection %+v", row, *tc.Rejection)
				}
				if rej.Reason != tc.Rejection.Reason || rej.Field != tc.Rejection.Field {
					t.Errorf("rejection %s/%s (%s), want %s/%s", rej.Reason, rej.Field, rej.Detail, tc.Rejection.Reason, tc.Rejection.Field)
				}
			default:
				if rej != nil {
					t.Fatalf("rejected: %v", rej)
				}
				// The expected row lists only some fields: compare those.
				want := &warehousev1.BattingGameRow{}
				if err := protojson.Unmarshal(tc.Row, want); err != nil {
					t.Fatalf("row: %v", err)
				}
				want.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
					if got := row.ProtoReflect().Get(fd); !got.Equal(v) {
						t.Errorf("%s = %v, want %v", fd.JSONName(), got, v)
					}
					return true
				})
				// Zero-valued expectations are not "set" in proto3; check booleans explicitly.
				var wantHome struct {
					Home *bool `json:"home"`
				}
				if err := json.Unmarshal(tc.Row, &wantHome); err == nil && wantHome.Home != nil && row.Home != *wantHome.Home {
					t.Errorf("home = %v, want %v", row.Home, *wantHome.Home)
				}
			}
		})
	}
}

// Every input record yields exactly one output, in order, whatever the input: valid lines,
// broken lines, random bytes and nil records mixed.
func TestTransformOneOutcomePerRecord(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var records []*transformv1.SourceRecord
	for seq := range 600 {
		switch seq % 6 {
		case 0:
			records = append(records, record(t, seq, validEvent(), map[string]string{"traceparent": testTraceparent}))
		case 1: // a line with random counts: some valid, most not
			ev := validEvent()
			b := ev.Batting
			for _, p := range []**int32{&b.PlateAppearances, &b.AtBats, &b.Hits, &b.Doubles, &b.HomeRuns, &b.Runs, &b.TotalBases} {
				if rng.IntN(8) == 0 {
					*p = nil
				} else {
					*p = proto.Int32(rng.Int32N(12) - 1)
				}
			}
			records = append(records, record(t, seq, ev, nil))
		case 2: // random bytes
			data := make([]byte, rng.IntN(64))
			for i := range data {
				data[i] = byte(rng.UintN(256))
			}
			records = append(records, rawRecord(seq, data))
		case 3: // a valid record with bytes flipped
			rec := record(t, seq, validEvent(), nil)
			for range 1 + rng.IntN(3) {
				rec.Data[rng.IntN(len(rec.Data))] ^= byte(1 + rng.UintN(255))
			}
			records = append(records, rec)
		case 4: // a valid record cut short
			rec := record(t, seq, validEvent(), nil)
			rec.Data = rec.Data[:rng.IntN(len(rec.Data))]
			records = append(records, rec)
		case 5:
			records = append(records, &transformv1.SourceRecord{Position: position(seq)})
		}
	}
	records = append(records, nil) // in-process callers could pass one; it must not panic

	resp := Transform(records)
	if got := len(resp.Rows) + len(resp.Rejections); got != len(records) {
		t.Fatalf("%d records gave %d rows + %d rejections", len(records), len(resp.Rows), len(resp.Rejections))
	}
	if len(resp.Rows) < 100 {
		t.Errorf("only %d rows: the valid records were not all accepted", len(resp.Rows))
	}
	// Each position appears once, and each list keeps input order.
	seen := map[string]bool{}
	check := func(kind string, positions []*streamv1.RecordPosition) {
		prev := ""
		for _, p := range positions {
			seq := p.GetSequenceNumber()
			if seen[seq] && seq != "" {
				t.Errorf("position %s appears twice", seq)
			}
			seen[seq] = true
			if seq != "" && seq <= prev {
				t.Errorf("%s out of order: %s after %s", kind, seq, prev)
			}
			if seq != "" {
				prev = seq
			}
		}
	}
	var rowPositions, rejPositions []*streamv1.RecordPosition
	for _, r := range resp.Rows {
		rowPositions = append(rowPositions, r.Position)
		if r.TraceId != "" && r.TraceId != testTraceID {
			t.Errorf("row trace id %q", r.TraceId)
		}
	}
	for _, r := range resp.Rejections {
		rejPositions = append(rejPositions, r.Position)
		if r.Stage != StageDecode && r.Stage != StageValidate || r.Reason == "" || r.Detail == "" {
			t.Errorf("incomplete rejection %v", r)
		}
	}
	check("rows", rowPositions)
	check("rejections", rejPositions)
	if len(seen) != len(records) { // the nil record contributes the empty sequence number
		t.Errorf("%d distinct positions for %d records", len(seen), len(records))
	}
}

func TestTransformEmpty(t *testing.T) {
	resp := Transform(nil)
	if len(resp.Rows) != 0 || len(resp.Rejections) != 0 {
		t.Fatalf("Transform(nil) = %v", resp)
	}
}
