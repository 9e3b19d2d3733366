package consumer

import (
	"testing"
	"time"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// A dead letter the consumer builds carries the event's id, version and producer when the
// record decodes, so the loader keeps one per event and the operator sees who sent it;
// nothing when it does not.
func TestEventOfReadsIDVersionAndProducerWhenTheRecordDecodes(t *testing.T) {
	data, err := statevent.EncodeProducerEnvelope(&statsv1.StatEvent{EventId: "evt-1", Version: 7}, "mlb-extract", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if id, version, producer := eventOf(data); id != "evt-1" || version != 7 || producer != "mlb-extract" {
		t.Errorf("eventOf(envelope) = %q, %d, %q; want evt-1, 7, mlb-extract", id, version, producer)
	}
	if id, version, producer := eventOf([]byte("not an envelope")); id != "" || version != 0 || producer != "" {
		t.Errorf("eventOf(garbage) = %q, %d, %q; want nothing", id, version, producer)
	}
}
