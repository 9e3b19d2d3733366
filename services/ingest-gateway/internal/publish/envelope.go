package publish

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// Field numbers of the per-event fields of streamv1.Envelope.
const (
	envelopePayloadField protowire.Number = 2
	envelopeEventIDField protowire.Number = 3
)

// batchEnvelopes writes the envelope records of one batch, byte for byte as
// statevent.EncodeProducerEnvelope writes each (TestBatchEnvelopesMatchEncodeProducerEnvelope),
// with less work: the records of a batch share their content type, acceptance time, trace
// context and producer, so those fields are marshalled once per batch instead of once per
// event (a map marshalled deterministically, sorted, per event), and every record is
// appended to one buffer instead of two allocations per event.
//
// Deterministic marshalling writes a message's known fields in field-number order, so an
// envelope is: content_type (1) | payload (2) | event_id (3) | accepted_at (4),
// trace_context (5), producer (6). The shared fields are the first and the last three.
type batchEnvelopes struct {
	head, tail []byte
}

var deterministic = proto.MarshalOptions{Deterministic: true}

func newBatchEnvelopes(producer string, acceptedAt time.Time, traceContext map[string]string) (batchEnvelopes, error) {
	head, err := deterministic.Marshal(&streamv1.Envelope{ContentType: statevent.ContentTypeStatEventProto})
	if err != nil {
		return batchEnvelopes{}, fmt.Errorf("encode envelope head: %w", err)
	}
	tail, err := deterministic.Marshal(&streamv1.Envelope{AcceptedAt: timestamppb.New(acceptedAt), TraceContext: traceContext, Producer: producer})
	if err != nil {
		return batchEnvelopes{}, fmt.Errorf("encode envelope tail: %w", err)
	}
	return batchEnvelopes{head: head, tail: tail}, nil
}

// sizes returns the deterministic size of every event, and of all their records together.
// The events' sizes are cached in them for appendRecord.
func (b batchEnvelopes) sizes(events []*statsv1.StatEvent) ([]int, int) {
	sizes := make([]int, len(events))
	total := 0
	for i, ev := range events {
		sizes[i] = deterministic.Size(ev)
		id := len(ev.GetEventId())
		total += len(b.head) + len(b.tail) +
			protowire.SizeTag(envelopePayloadField) + protowire.SizeBytes(sizes[i]) +
			protowire.SizeTag(envelopeEventIDField) + protowire.SizeBytes(id)
	}
	return sizes, total
}

// appendRecord appends ev's record to buf; size is ev's size from sizes, with ev unchanged
// since.
func (b batchEnvelopes) appendRecord(buf []byte, ev *statsv1.StatEvent, size int) ([]byte, error) {
	buf = append(buf, b.head...)
	if size > 0 { // proto3 leaves empty fields out
		buf = protowire.AppendTag(buf, envelopePayloadField, protowire.BytesType)
		buf = protowire.AppendVarint(buf, uint64(size))
		var err error
		if buf, err = (proto.MarshalOptions{Deterministic: true, UseCachedSize: true}).MarshalAppend(buf, ev); err != nil {
			return nil, err
		}
	}
	if id := ev.GetEventId(); id != "" {
		buf = protowire.AppendTag(buf, envelopeEventIDField, protowire.BytesType)
		buf = protowire.AppendString(buf, id)
	}
	return append(buf, b.tail...), nil
}
