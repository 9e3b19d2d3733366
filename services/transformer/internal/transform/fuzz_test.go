package transform

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// FuzzTransform feeds arbitrary record bytes to Transform: nothing may panic, every record
// gives exactly one row or one rejection, every row passes the loader's own rules
// (statevent.CheckRow: whatever the loader would refuse must be a rejection, not a row),
// every rejection names its stage and reason and keeps the record's bytes, and the response
// can be sent (proto strings must be valid UTF-8).
func FuzzTransform(f *testing.F) {
	at := time.Date(2024, 3, 21, 5, 6, 7, 0, time.UTC)
	for _, producer := range []string{"", "demo"} {
		data, err := statevent.EncodeProducerEnvelope(validEvent(), producer, at, map[string]string{"traceparent": testTraceparent})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	retraction, err := statevent.EncodeProducerEnvelope(retractionEvent(), "ops", at, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(retraction)
	f.Fuzz(func(t *testing.T, data []byte) {
		resp := Transform([]*transformv1.SourceRecord{{Position: position(1), PartitionKey: "1", Data: data}})
		if len(resp.GetRows())+len(resp.GetRejections()) != 1 {
			t.Fatalf("one record gave %d rows and %d rejections", len(resp.GetRows()), len(resp.GetRejections()))
		}
		for _, row := range resp.GetRows() {
			if vs := statevent.CheckRow(row); len(vs) > 0 {
				t.Errorf("row the loader would refuse: %v", vs)
			}
			if row.GetRetraction() == nil && row.GetHits() > row.GetAtBats() {
				t.Errorf("inconsistent row: %d hits in %d at bats", row.GetHits(), row.GetAtBats())
			}
		}
		for _, rej := range resp.GetRejections() {
			if rej.GetStage() == "" || rej.GetReason() == "" || string(rej.GetPayload()) != string(data) {
				t.Errorf("rejection without stage, reason or the record's bytes: %v", rej)
			}
		}
		if _, err := proto.Marshal(resp); err != nil {
			t.Errorf("the response cannot be sent: %v", err)
		}
	})
}
