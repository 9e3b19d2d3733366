package consumer

import (
	"go.opentelemetry.io/otel/trace"

	"github.com/boxscore-dev/boxscore/pkg/deadletter"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
)

// recordDeadLetters puts a dead_letter event on the batch span for each record the
// transformer rejected, once the batch (and so its dead letters) is committed. The rows the
// warehouse itself refuses are recorded by the loader, on its Load span in the same trace.
// The SDK's limit on events per span (OTEL_SPAN_EVENT_COUNT_LIMIT, 128 by default) bounds
// a batch of many rejections; the span's boxscore.rejections attribute keeps the count.
func recordDeadLetters(span trace.Span, rejections []*warehousev1.Rejection) {
	for _, r := range rejections {
		pos := r.GetPosition()
		deadletter.Record(span, deadletter.Letter{
			Stream: pos.GetStream(), ShardID: pos.GetShardId(), SequenceNumber: pos.GetSequenceNumber(),
			EventID: r.GetEventId(), Stage: r.GetStage(), Reason: r.GetReason(), Field: r.GetField(),
		})
	}
}
