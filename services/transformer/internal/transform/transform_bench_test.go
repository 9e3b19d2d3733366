package transform

import (
	"testing"

	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// BenchmarkTransform500 transforms a batch of 500 valid records, the consumer's default
// batch, each with a producer and a trace context as the gateway writes them.
func BenchmarkTransform500(b *testing.B) {
	const n = 500
	records := make([]*transformv1.SourceRecord, n)
	for i := range records {
		ev := validEvent()
		ev.Player.MlbId = int64(100000 + i)
		data, err := statevent.EncodeProducerEnvelope(ev, "scorer", testAcceptedAt, map[string]string{"traceparent": testTraceparent})
		if err != nil {
			b.Fatalf("EncodeProducerEnvelope: %v", err)
		}
		records[i] = &transformv1.SourceRecord{Position: position(i + 1), PartitionKey: "660271", Data: data}
	}
	b.ReportAllocs()
	for b.Loop() {
		if resp := Transform(records); len(resp.GetRows()) != n {
			b.Fatalf("rows = %d, rejections %v", len(resp.GetRows()), resp.GetRejections())
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
