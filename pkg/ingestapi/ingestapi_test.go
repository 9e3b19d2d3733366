package ingestapi_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/boxscore-dev/boxscore/pkg/ingestapi"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// The JSON member names are the contract with clients written in other languages too: a
// renamed Go field must not rename a member silently.
func TestProblemWireForm(t *testing.T) {
	index := 3
	p := ingestapi.Problem{
		Type: ingestapi.TypeURI(ingestapi.TypeStreamUnavailable), Title: "Stream Unavailable", Status: 503,
		Detail: "d", Instance: "/v1/stats", RequestID: "r-1", Index: &index, Line: 4,
		Errors:            []ingestapi.Violation{{Index: 1, EventID: "e1", Field: "batting.atBats", Reason: "required", Detail: "x"}},
		Acknowledged:      []ingestapi.Result{{Index: 0, EventID: "e0", ShardID: "shardId-000000000000", SequenceNumber: "49"}},
		NotAcknowledged:   []ingestapi.NotAcknowledged{{Index: 1, EventID: "e1", ErrorCode: "ProvisionedThroughputExceededException"}},
		RetryAfterSeconds: 2,
	}
	got, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"type":"https://boxscore.dev/problems/stream-unavailable","title":"Stream Unavailable","status":503,` +
		`"detail":"d","instance":"/v1/stats","requestId":"r-1","index":3,"line":4,` +
		`"errors":[{"index":1,"eventId":"e1","field":"batting.atBats","reason":"required","detail":"x"}],` +
		`"acknowledged":[{"index":0,"eventId":"e0","shardId":"shardId-000000000000","sequenceNumber":"49"}],` +
		`"notAcknowledged":[{"index":1,"eventId":"e1","errorCode":"ProvisionedThroughputExceededException"}],` +
		`"retryAfterSeconds":2}`
	if string(got) != want {
		t.Errorf("wire form:\n got %s\nwant %s", got, want)
	}
}

// What the gateway writes, a client reads back unchanged, for every member.
func TestProblemRoundTrip(t *testing.T) {
	index := 0
	for name, p := range map[string]ingestapi.Problem{
		"minimal": {Type: "about:blank", Title: "Internal Server Error", Status: 500},
		"malformed": {Type: ingestapi.TypeURI(ingestapi.TypeMalformedEvent), Title: "Malformed Request Body", Status: 400,
			Detail: "event 0 (line 1): bad", Instance: "/v1/stats", RequestID: "r", Index: &index, Line: 1},
		"invalid": {Type: ingestapi.TypeURI(ingestapi.TypeInvalidEvents), Title: "Invalid Events", Status: 422, Detail: "2 violations",
			Errors: []ingestapi.Violation{
				{Index: 0, Field: "player.mlbId", Reason: "required", Detail: "a"},
				{Index: 4, EventID: "e4", Field: "", Reason: "too_large", Detail: "b"},
			}},
		"partial": {Type: ingestapi.TypeURI(ingestapi.TypeStreamRejected), Title: "Stream Rejected Events", Status: 500,
			Acknowledged:    []ingestapi.Result{{Index: 1, EventID: "b", ShardID: "s", SequenceNumber: "1"}},
			NotAcknowledged: []ingestapi.NotAcknowledged{{Index: 0, EventID: "a", ErrorCode: "KMSDisabledException"}}},
		"nothing acknowledged": {Type: ingestapi.TypeURI(ingestapi.TypeStreamUnavailable), Title: "Stream Unavailable", Status: 503,
			Acknowledged:      []ingestapi.Result{},
			NotAcknowledged:   []ingestapi.NotAcknowledged{{Index: 0, EventID: "a"}},
			RetryAfterSeconds: 1},
	} {
		t.Run(name, func(t *testing.T) {
			data, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			var back ingestapi.Problem
			if err := json.Unmarshal(data, &back); err != nil {
				t.Fatalf("unmarshal %s: %v", data, err)
			}
			if !reflect.DeepEqual(back, p) {
				t.Errorf("round trip changed the problem:\n got %+v\nwant %+v\n(wire %s)", back, p, data)
			}
		})
	}
}

// An empty list of acknowledged events is said (the stream was involved and took nothing);
// a missing one is not (the stream was not involved).
func TestAcknowledgedPresentWhenEmpty(t *testing.T) {
	involved, err := json.Marshal(ingestapi.Problem{Status: 503, Acknowledged: []ingestapi.Result{}, NotAcknowledged: []ingestapi.NotAcknowledged{}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"","title":"","status":503,"acknowledged":[],"notAcknowledged":[]}`; string(involved) != want {
		t.Errorf("got %s, want %s", involved, want)
	}
	notInvolved, err := json.Marshal(ingestapi.Problem{Status: 400})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"","title":"","status":400}`; string(notInvolved) != want {
		t.Errorf("got %s, want %s", notInvolved, want)
	}
}

func TestAcceptedRoundTrip(t *testing.T) {
	a := ingestapi.Accepted{Accepted: 2, Results: []ingestapi.Result{
		{Index: 0, EventID: "a", ShardID: "shardId-000000000001", SequenceNumber: "1"},
		{Index: 1, EventID: "b", ShardID: "shardId-000000000000", SequenceNumber: "2"},
	}}
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"accepted":2,"results":[{"index":0,"eventId":"a","shardId":"shardId-000000000001","sequenceNumber":"1"},` +
		`{"index":1,"eventId":"b","shardId":"shardId-000000000000","sequenceNumber":"2"}]}`
	if string(data) != want {
		t.Errorf("wire form:\n got %s\nwant %s", data, want)
	}
	var back ingestapi.Accepted
	if err := json.Unmarshal(data, &back); err != nil || !reflect.DeepEqual(back, a) {
		t.Errorf("round trip = %+v, %v; want %+v", back, err, a)
	}
}

func TestProblemHelpers(t *testing.T) {
	p := ingestapi.Problem{Type: ingestapi.TypeURI(ingestapi.TypeBusy), RetryAfterSeconds: 3}
	if !p.HasType(ingestapi.TypeBusy) || p.HasType(ingestapi.TypeStreamUnavailable) {
		t.Errorf("HasType is wrong for %q", p.Type)
	}
	if got := p.RetryAfter(); got != 3*time.Second {
		t.Errorf("RetryAfter = %s, want 3s", got)
	}
	if got := (&ingestapi.Problem{RetryAfterSeconds: -1}).RetryAfter(); got != 0 {
		t.Errorf("RetryAfter of a negative value = %s, want 0", got)
	}
}

// FuzzDecodeEvent runs arbitrary bytes through the gateway's path for one event: decode,
// Normalize, ValidateShape, CheckConsistency, CheckVersionCeiling. Nothing may panic, and
// every event that passes all of them must be normalized and storable: valid UTF-8 without
// NUL or control characters, in NFC, trimmed; Normalize a second time changes nothing; it
// survives the trip through a stream envelope unchanged.
func FuzzDecodeEvent(f *testing.F) {
	for _, seed := range []string{
		`{"player":{"mlbId":"660271","name":"Shohei Ohtani","team":"LAD"},"game":{"gameId":"SDN202403200","date":"2024-03-20","opponent":"SD","homeAway":"HOME_AWAY_AWAY"},"batting":{"plateAppearances":5,"atBats":4,"runs":1,"hits":2,"doubles":1,"triples":0,"homeRuns":1,"rbi":3,"baseOnBalls":1,"intentionalWalks":0,"strikeOuts":1,"hitByPitch":0,"sacBunts":0,"sacFlies":0,"stolenBases":0,"caughtStealing":0,"groundIntoDoublePlay":0},"version":"2","source":"curl"}`,
		`{"player":{"mlbId":"660271"},"game":{"gameId":"SDN202403200"},"version":"3","retraction":{"reason":"wrong player"}}`,
	} {
		f.Add([]byte(seed))
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := ingestapi.DecodeEvent(data)
		if err != nil {
			return
		}
		statevent.Normalize(ev)
		if len(statevent.ValidateShape(ev)) > 0 || len(statevent.CheckConsistency(ev)) > 0 ||
			len(statevent.CheckVersionCeiling(ev, now)) > 0 {
			return
		}
		for name, s := range map[string]string{
			"eventId": ev.GetEventId(), "player.name": ev.GetPlayer().GetName(), "player.team": ev.GetPlayer().GetTeam(),
			"game.gameId": ev.GetGame().GetGameId(), "game.date": ev.GetGame().GetDate(), "game.opponent": ev.GetGame().GetOpponent(),
			"source": ev.GetSource(), "retraction.reason": ev.GetRetraction().GetReason(),
		} {
			if !statevent.IsNormalizedText(s) {
				t.Errorf("accepted %s %q is not normalized storable text", name, s)
			}
		}
		if ev.GetVersion() <= 0 || ev.GetVersion() > statevent.VersionCeiling(now) {
			t.Errorf("accepted version %d out of (0, ceiling]", ev.GetVersion())
		}
		if ingestapi.IsRetraction(ev) && ev.GetBatting() != nil {
			t.Errorf("accepted a retraction with a batting line")
		}
		again := proto.CloneOf(ev)
		statevent.Normalize(again)
		if !proto.Equal(ev, again) {
			t.Errorf("Normalize is not idempotent:\n%v\n%v", ev, again)
		}
		record, err := statevent.EncodeProducerEnvelope(ev, "fuzz", now, nil)
		if err != nil {
			t.Fatalf("an accepted event does not encode: %v", err)
		}
		env, decoded, err := statevent.DecodeEnvelope(record)
		if err != nil || env.GetProducer() != "fuzz" || !proto.Equal(ev, decoded) {
			t.Errorf("an accepted event does not survive the stream: %v", err)
		}
	})
}

// A retraction decodes from the documented JSON, and a batting member beside it, or a
// misspelt member, is refused (the former by the shape rules, the latter by decoding).
func TestDecodeEventRetraction(t *testing.T) {
	ev, err := ingestapi.DecodeEvent([]byte(`{"player":{"mlbId":"660271"},"game":{"gameId":" SDN202403200 "},"version":"3","retraction":{"reason":"wrong player"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !ingestapi.IsRetraction(ev) || ev.GetRetraction().GetReason() != "wrong player" {
		t.Fatalf("decoded %v, want a retraction", ev)
	}
	statevent.Normalize(ev)
	if vs := statevent.ValidateShape(ev); len(vs) != 0 {
		t.Fatalf("valid retraction refused: %v", vs)
	}
	if ev.GetGame().GetGameId() != "SDN202403200" {
		t.Errorf("game id %q not trimmed", ev.GetGame().GetGameId())
	}

	withBatting, err := ingestapi.DecodeEvent([]byte(`{"player":{"mlbId":"1"},"game":{"gameId":"G1"},"version":"3","retraction":{"reason":"r"},"batting":{"hits":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	statevent.Normalize(withBatting)
	if vs := statevent.ValidateShape(withBatting); !hasReason(vs, "batting", "not_allowed") {
		t.Errorf("retraction with batting: violations %v, want batting not_allowed", vs)
	}
	if _, err := ingestapi.DecodeEvent([]byte(`{"retraction":{"reasn":"typo"}}`)); err == nil {
		t.Error("an unknown member decoded")
	}
	if _, err := ingestapi.DecodeEvent([]byte("{\"player\":{\"name\":\"\xff\"}}")); err == nil {
		t.Error("invalid UTF-8 decoded")
	}
}

func hasReason(vs []statevent.Violation, field, reason string) bool {
	for _, v := range vs {
		if v.Field == field && v.Reason == reason {
			return true
		}
	}
	return false
}
