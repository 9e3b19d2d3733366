package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/ingestapi"
	"github.com/boxscore-dev/boxscore/pkg/testutil/testevents"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/ingest"
)

// plainEvent is an event as the bench's producers send it: 64-bit numbers as strings.
const plainEvent = `{"batting":{"atBats":3,"baseOnBalls":1,"caughtStealing":0,"doubles":1,"groundIntoDoublePlay":0,` +
	`"hitByPitch":0,"hits":2,"homeRuns":1,"intentionalWalks":0,"plateAppearances":4,"rbi":2,"runs":1,"sacBunts":0,` +
	`"sacFlies":0,"stolenBases":1,"strikeOuts":1,"totalBases":6,"triples":0},"eventId":"bench-700000-bench0000000-v1",` +
	`"game":{"date":"2024-04-01","gameId":"bench0000000","gameNumber":1,"homeAway":"HOME_AWAY_HOME","opponent":"SD"},` +
	`"player":{"mlbId":"700000","name":"Player 700000","team":"LAD"},"source":"stack-test","version":"1"}`

// checkSameAsProtojson fails unless decodeEvent answers data exactly as ingestapi.DecodeEvent
// (protojson) does, and reports whether the fast reader took it.
func checkSameAsProtojson(t *testing.T, data []byte) bool {
	t.Helper()
	want, wantErr := ingestapi.DecodeEvent(data)
	fast, ok := fastDecodeEvent(data)
	if ok && (wantErr != nil || !proto.Equal(fast, want)) {
		t.Fatalf("fast reader took %q as %v; protojson: %v, %v", data, fast, want, wantErr)
	}
	got, gotErr := decodeEvent(data)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !proto.Equal(got, want) {
		t.Fatalf("decodeEvent(%q) = %v, %v; protojson: %v, %v", data, got, gotErr, want, wantErr)
	}
	return ok
}

// TestFastDecodeTakesPlainEvents checks that the events producers usually send take the
// fast path (or it would not pay), including every field of the event, as protojson renders
// them.
func TestFastDecodeTakesPlainEvents(t *testing.T) {
	full := testevents.Valid(660271, 7)
	full.EventId, full.Version, full.Game.GameNumber, full.Game.Season = "ev-1", 3, 2, 2024
	full.Batting.TotalBases = proto.Int32(7)
	retraction := &statsv1.StatEvent{EventId: "r", Player: &statsv1.Player{MlbId: -1}, Game: &statsv1.Game{GameId: "g"},
		Version: 2, Retraction: &statsv1.Retraction{Reason: "dup ✓"}}
	// Every field the fast reader knows is set in one of these; none is left to protojson.
	for _, ev := range []*statsv1.StatEvent{full, retraction, {}} {
		data, err := protojson.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if !checkSameAsProtojson(t, data) {
			t.Errorf("%s: not taken by the fast reader", data)
		}
	}
	if !checkSameAsProtojson(t, []byte(plainEvent)) {
		t.Errorf("the bench's event is not taken by the fast reader")
	}
	// The fast reader names its fields by hand: they must be the descriptor's JSON names.
	fields := full.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if f := fields.Get(i); f.Name() != "source_time" && !strings.Contains(plainEvent+`"retraction"`, `"`+f.JSONName()+`"`) {
			t.Errorf("StatEvent field %s missing from the test event", f.JSONName())
		}
	}
	batting := (&statsv1.BattingLine{}).ProtoReflect().Descriptor().Fields()
	for i := range batting.Len() {
		f := batting.Get(i)
		if battingFields[f.JSONName()] != int(f.Number()) {
			t.Errorf("batting field %s is number %d, the fast reader says %d", f.JSONName(), f.Number(), battingFields[f.JSONName()])
		}
	}
	if len(battingFields) != batting.Len() || batting.Len() != len(eventParts{}.counts) {
		t.Errorf("BattingLine has %d fields, the fast reader knows %d", batting.Len(), len(battingFields))
	}
	checkOptionalCounts(t, batting)
}

// checkOptionalCounts makes sure every count of BattingLine is an optional int32, the only
// kind the fast reader sets.
func checkOptionalCounts(t *testing.T, fields protoreflect.FieldDescriptors) {
	t.Helper()
	for i := range fields.Len() {
		if f := fields.Get(i); f.Kind() != protoreflect.Int32Kind || !f.HasPresence() {
			t.Errorf("batting field %s is %v, presence %v", f.JSONName(), f.Kind(), f.HasPresence())
		}
	}
}

// TestFastDecodeLeavesTheRestToProtojson checks forms near the edge of the fast reader's
// subset: each is answered as protojson answers it, whether the fast reader takes it or not.
func TestFastDecodeLeavesTheRestToProtojson(t *testing.T) {
	for _, body := range []string{
		``, ` `, `{}`, ` { } `, `{}x`, `{} {}`, `[]`, `null`, `{"eventId":null}`, `{"eventId":"a","eventId":"b"}`,
		`{"eventId":"a","event_id":"b"}`, `{"event_id":"b"}`, `{"eventId":"a\"b"}`, `{"eventId":"a\u0041"}`,
		"{\"eventId\":\"a\x01\"}", "{\"eventId\":\"\xff\"}", `{"eventId":"Acuña"}`, `{"eventId":1}`,
		`{"version":1}`, `{"version":"1"}`, `{"version":-1}`, `{"version":-0}`, `{"version":"-0"}`, `{"version":01}`,
		`{"version":1.0}`, `{"version":1e2}`, `{"version":"1e2"}`, `{"version":" 1"}`, `{"version":9223372036854775807}`,
		`{"version":9223372036854775808}`, `{"version":"9223372036854775808"}`, `{"version":true}`, `{"version":}`,
		`{"game":{"gameNumber":2147483647}}`, `{"game":{"gameNumber":2147483648}}`, `{"game":{"season":-2147483648}}`,
		`{"game":{"homeAway":"HOME_AWAY_AWAY"}}`, `{"game":{"homeAway":"AWAY"}}`, `{"game":{"homeAway":2}}`,
		`{"game":{"homeAway":"HOME_AWAY_UNSPECIFIED"}}`, `{"game":{"gameId":"a","gameId":"a"}}`, `{"game":null}`,
		`{"game":[]}`, `{"game":{}}`, `{"batting":{}}`, `{"batting":{"atBats":0}}`, `{"batting":{"atBats":null}}`,
		`{"batting":{"atBats":1,"atBats":1}}`, `{"batting":{"at_bats":1}}`, `{"batting":{"atBat":1}}`,
		`{"retraction":{}}`, `{"retraction":{"reason":"x","reason":"y"}}`, `{"retraction":{"why":"x"}}`,
		`{"sourceTime":"2024-01-01T00:00:00Z"}`, `{"player":{"mlbId":"1","mlbId":"1"}}`, `{"player":{"mlbId":"0"}}`,
		`{"eventId":"a",}`, `{,}`, `{"eventId" : "a" , "source" : "b" }`, "{\t\"eventId\"\r\n:\"a\"}", `{"eventId":"a"`,
		`{"eventId":"a"}}`, `{"version":1}` + "\u00a0", `{"unknown":1}`, `{"player":{"mlbId":"1"},"player":{}}`,
	} {
		checkSameAsProtojson(t, []byte(body))
	}
}

// FuzzFastDecodeEventMatchesProtojson: whatever the bytes, decodeEvent answers as protojson
// (ingestapi.DecodeEvent) does, and the fast reader never takes what protojson would read
// otherwise.
func FuzzFastDecodeEventMatchesProtojson(f *testing.F) {
	f.Add([]byte(plainEvent))
	f.Add([]byte(`{"eventId":"e","player":{"mlbId":1},"game":{"gameId":"g","homeAway":"HOME_AWAY_AWAY","season":2024},"version":"-3","retraction":{"reason":"r"}}`))
	f.Add([]byte(`{"batting":{"atBats":"0","hits":-1}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSameAsProtojson(t, data)
	})
}

func BenchmarkDecodeEvent(b *testing.B) {
	data := []byte(plainEvent)
	b.Run("protojson", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := ingestapi.DecodeEvent(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := decodeEvent(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// errAfter is a body that fails with err after its bytes.
func errAfter(data []byte, err error) io.Reader {
	return io.MultiReader(bytes.NewReader(data), failingReader{err})
}

// bodyDecoders are a body decoder, the stream decoder it must answer as, and its fast reader.
type bodyDecoders struct {
	whole, stream func(io.Reader, int) ([]*statsv1.StatEvent, error)
	fast          func([]byte, int) ([]*statsv1.StatEvent, bool)
}

var (
	arrayDecoders  = bodyDecoders{decodeJSONArray, decodeJSONArrayStream, fastDecodeArray}
	ndjsonDecoders = bodyDecoders{decodeNDJSON, decodeNDJSONStream, fastDecodeNDJSON}
)

// checkArraySameAsStream is checkSameAsStream of the JSON array decoders.
func checkArraySameAsStream(t *testing.T, body []byte, maxEvents int, readErr error) bool {
	t.Helper()
	return checkSameAsStream(t, arrayDecoders, body, maxEvents, readErr)
}

// checkSameAsStream fails unless dec.whole answers body (with maxEvents, and readErr after
// its bytes when not nil) as dec.stream does, and reports whether the fast reader took it.
func checkSameAsStream(t *testing.T, dec bodyDecoders, body []byte, maxEvents int, readErr error) bool {
	t.Helper()
	open := func() io.Reader {
		if readErr != nil {
			return errAfter(body, readErr)
		}
		return bytes.NewReader(body)
	}
	want, wantErr := dec.stream(open(), maxEvents)
	got, gotErr := dec.whole(open(), maxEvents)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || errors.Is(wantErr, readErr) != errors.Is(gotErr, readErr) || len(got) != len(want) {
		t.Fatalf("decoding %q: %d events, %v; the stream decoder: %d, %v", body, len(got), gotErr, len(want), wantErr)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("decoding %q: event %d is %v, the stream decoder's %v", body, i, got[i], want[i])
		}
	}
	_, fast := dec.fast(body, maxEvents)
	return fast && readErr == nil
}

func TestDecodeNDJSONMatchesStream(t *testing.T) {
	plain := []byte(plainEvent + "\n\n  " + plainEvent + " \r\n" + plainEvent)
	if !checkSameAsStream(t, ndjsonDecoders, plain, 500, nil) {
		t.Error("NDJSON of plain events is not taken by the fast reader")
	}
	tooLarge := &http.MaxBytesError{Limit: 10}
	for _, tc := range []struct {
		body      string
		maxEvents int
		readErr   error
	}{
		{``, 500, nil}, {"\n\n", 500, nil}, {"{}", 500, nil}, {"{}\n{}", 1, nil}, {"{}\n{}\n", 2, nil},
		{"{}\n{\"version\":1.5}\n{}", 500, nil}, {"{} {}", 500, nil}, {"\u00a0{}\u00a0\n\x85{}", 500, nil},
		{"{}\n[]", 500, nil}, {"{}\nnull", 500, nil}, {"{\"eventId\":\"a\nb\"}", 500, nil}, {"\xff", 500, nil},
		{"{}\n{}", 500, tooLarge}, {"{}\n{", 500, io.ErrUnexpectedEOF}, {"x\n{}", 500, tooLarge}, {"{}\n{}\n{}\n", 2, tooLarge},
	} {
		checkSameAsStream(t, ndjsonDecoders, []byte(tc.body), tc.maxEvents, tc.readErr)
	}
}

// FuzzDecodeNDJSONMatchesStream: whatever the body, decodeNDJSON answers as
// decodeNDJSONStream does, with or without a read error after the body.
func FuzzDecodeNDJSONMatchesStream(f *testing.F) {
	f.Add([]byte(plainEvent+"\n\n"+plainEvent), uint8(3), false)
	f.Add([]byte(`{"eventId":"e","player":{"mlbId":1},"game":{"gameId":"g"},"version":"2","retraction":{"reason":"r"}}`), uint8(1), true)
	f.Add([]byte("{}\n {\"batting\":{\"atBats\":\"0\"}}\r\n"), uint8(1), false)
	f.Fuzz(func(t *testing.T, body []byte, maxEvents uint8, failRead bool) {
		var readErr error
		if failRead {
			readErr = &http.MaxBytesError{Limit: int64(len(body))}
		}
		checkSameAsStream(t, ndjsonDecoders, body, int(maxEvents), readErr)
	})
}

func TestDecodeJSONArrayMatchesStream(t *testing.T) {
	plain := []byte("[" + plainEvent + ",\n " + plainEvent + "]")
	if !checkArraySameAsStream(t, plain, 500, nil) {
		t.Error("an array of plain events is not taken by the fast reader")
	}
	tooLarge := &http.MaxBytesError{Limit: 10}
	for _, tc := range []struct {
		body      string
		maxEvents int
		readErr   error
	}{
		{`[]`, 500, nil}, {` [ ] `, 500, nil}, {`[`, 500, nil}, {`]`, 500, nil}, {`{}`, 500, nil}, {``, 500, nil},
		{`[{}]`, 500, nil}, {`[{},{}]`, 1, nil}, {`[{},{}]`, 2, nil}, {`[{} {}]`, 500, nil}, {`[{},]`, 500, nil},
		{`[{}] x`, 500, nil}, {`[{}][]`, 500, nil}, {`[{"eventId":"a\u0041"}]`, 500, nil}, {`[null]`, 500, nil},
		{`[{"version":1.5}]`, 500, nil}, {`[{"unknown":1}]`, 500, nil}, {"[{}]\n", 500, nil},
		{`[{}`, 500, tooLarge}, {`[{}]`, 500, tooLarge}, {`[{"eventId":`, 500, io.ErrUnexpectedEOF},
		{`x[{}`, 500, tooLarge}, {`[{},{},{}`, 2, tooLarge},
	} {
		checkArraySameAsStream(t, []byte(tc.body), tc.maxEvents, tc.readErr)
	}
}

// FuzzDecodeJSONArrayMatchesStream: whatever the body, decodeJSONArray answers as
// decodeJSONArrayStream does, with or without a read error after the body.
func FuzzDecodeJSONArrayMatchesStream(f *testing.F) {
	f.Add([]byte("["+plainEvent+","+plainEvent+"]"), uint8(3), false)
	f.Add([]byte(`[{"eventId":"e","player":{"mlbId":1},"game":{"gameId":"g"},"version":"2","retraction":{"reason":"r"}}]`), uint8(1), true)
	f.Add([]byte(`[{}, {"batting":{"atBats":"0"}}]`), uint8(1), false)
	f.Fuzz(func(t *testing.T, body []byte, maxEvents uint8, failRead bool) {
		var readErr error
		if failRead {
			readErr = &http.MaxBytesError{Limit: int64(len(body))}
		}
		checkArraySameAsStream(t, body, int(maxEvents), readErr)
	})
}

func BenchmarkDecodeBody(b *testing.B) {
	lines := make([]string, benchEvents)
	for i := range lines {
		lines[i] = plainEvent
	}
	for _, tc := range []struct {
		name   string
		body   []byte
		decode func(io.Reader, int) ([]*statsv1.StatEvent, error)
	}{
		{"ndjson-stream", []byte(strings.Join(lines, "\n") + "\n"), decodeNDJSONStream},
		{"ndjson", []byte(strings.Join(lines, "\n") + "\n"), decodeNDJSON},
		{"array-stream", []byte("[" + strings.Join(lines, ",") + "]"), decodeJSONArrayStream},
		{"array", []byte("[" + strings.Join(lines, ",") + "]"), decodeJSONArray},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if events, err := tc.decode(bytes.NewReader(tc.body), ingest.MaxBatchEvents); err != nil || len(events) != benchEvents {
					b.Fatalf("%d events, %v", len(events), err)
				}
			}
		})
	}
}

// benchEvents is the bench's request size.
const benchEvents = 100
