package httpapi

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/ingest"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/publish"
)

// FuzzDecodeBatch feeds arbitrary bodies to the HTTP request decoders (a JSON array, and
// NDJSON) and the gateway's validation after them. Nothing may panic or hang; a decoder
// either returns a located error or at most MaxBatchEvents events; and a batch validation
// accepts is one the rest of the pipeline can carry: every event is normalized (validating
// again changes nothing), its record encodes within the Kinesis record limit, and the
// record decodes back to the same event, as the transformer will read it.
// The corpus is in testdata/fuzz/FuzzDecodeBatch; CI runs it as seeds (and `go test -fuzz`
// for a fixed time).
func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(`[{"eventId":"e1","player":{"mlbId":660271,"name":"Shohei Ohtani","team":"LAD"},"game":{"gameId":"SDN202403200","date":"2024-03-20","opponent":"SD","homeAway":"HOME_AWAY_AWAY"},"batting":{"plateAppearances":5,"atBats":4,"runs":1,"hits":2,"doubles":1,"triples":0,"homeRuns":1,"rbi":3,"baseOnBalls":1,"intentionalWalks":0,"strikeOuts":1,"hitByPitch":0,"sacBunts":0,"sacFlies":0,"stolenBases":0,"caughtStealing":0,"groundIntoDoublePlay":0},"version":3,"source":"replay"}]`), false)
	f.Add([]byte("{\"player\":{\"mlbId\":1},\"game\":{\"gameId\":\"LAN202409290\"},\"version\":2,\"retraction\":{\"reason\":\"dup\"}}\n\n{}\n"), true)
	f.Add([]byte(`[`), false)
	f.Add([]byte(`[{"player":{"mlbId":"1e400"}}]`), false)
	f.Add([]byte("\xff\xfe[]"), true)
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool) {
		decode := decodeJSONArray
		if ndjson {
			decode = decodeNDJSON
		}
		done := make(chan struct{})
		var events []*statsv1.StatEvent
		var err error
		go func() {
			defer close(done)
			events, err = decode(bytes.NewReader(body), ingest.MaxBatchEvents)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("decoding %d bytes did not end within 10 s", len(body))
		}
		if err != nil {
			var malformed *malformedError
			var tooMany *tooManyEventsError
			if !errors.As(err, &malformed) && !errors.As(err, &tooMany) {
				t.Fatalf("error %v (%T) is neither malformed nor too many events", err, err)
			}
			if events != nil {
				t.Fatal("events returned with an error")
			}
			return
		}
		if len(events) > ingest.MaxBatchEvents {
			t.Fatalf("%d events decoded, more than %d", len(events), ingest.MaxBatchEvents)
		}
		for i, ev := range events {
			if ev == nil {
				t.Fatalf("event %d is nil", i)
			}
		}
		if ingest.Validate(events) != nil {
			return
		}
		for i, ev := range events {
			again := proto.CloneOf(ev)
			statevent.Normalize(again)
			if !proto.Equal(ev, again) {
				t.Errorf("event %d: accepted but not normalized", i)
			}
			if v := statevent.ValidateShape(again); len(v) > 0 {
				t.Errorf("event %d: accepted, then invalid on a second look: %v", i, v)
			}
			data, err := statevent.EncodeProducerEnvelope(ev, "fuzz", time.Now(), nil)
			if err != nil {
				t.Fatalf("event %d: accepted but its record does not encode: %v", i, err)
			}
			if len(data) > publish.MaxRecordBytes {
				t.Errorf("event %d: accepted with a record of %d bytes, over %d", i, len(data), publish.MaxRecordBytes)
			}
			_, decoded, err := statevent.DecodeEnvelope(data)
			if err != nil || !proto.Equal(decoded, ev) {
				t.Errorf("event %d: its record does not decode back to it: %v", i, err)
			}
		}
	})
}
