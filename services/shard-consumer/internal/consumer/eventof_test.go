package consumer

import (
	"testing"
	"time"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// A dead letter the consumer builds carries the event's id and version when the record
// decodes, so the loader keeps one per event; nothing when it does not.
func TestEventOfReadsIDAndVersionWhenTheRecordDecodes(t *testing.T) {
	data, err := statevent.EncodeEnvelope(&statsv1.StatEvent{EventId: "evt-1", Version: 7}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if id, version := eventOf(data); id != "evt-1" || version != 7 {
		t.Errorf("eventOf(envelope) = %q, %d; want evt-1, 7", id, version)
	}
	if id, version := eventOf([]byte("not an envelope")); id != "" || version != 0 {
		t.Errorf("eventOf(garbage) = %q, %d; want nothing", id, version)
	}
}
