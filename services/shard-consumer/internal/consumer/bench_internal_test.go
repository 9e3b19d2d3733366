package consumer

import (
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/limits"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// gatewayPage is a GetRecords answer as the gateway writes records: envelopes with the
// producing span's trace context, shared by the records of one PutRecords call (500).
func gatewayPage(b *testing.B, n int) []types.Record {
	b.Helper()
	recs := make([]types.Record, n)
	arrived := time.Now()
	for i := range recs {
		put := i / limits.KinesisPutRecordsEntries
		tc := map[string]string{"traceparent": fmt.Sprintf("00-%032x-%016x-01", put+1, put+1)}
		ev := &statsv1.StatEvent{
			EventId: fmt.Sprintf("ev-%06d", i), Version: int64(i),
			Player: &statsv1.Player{MlbId: 660271, Name: "Shohei Ohtani", Team: "LAD"},
			Game:   &statsv1.Game{GameId: "LAN202403200", Date: "2024-03-20", Opponent: "SDN", Season: 2024},
		}
		data, err := statevent.EncodeProducerEnvelope(ev, "scorer", arrived, tc)
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = types.Record{Data: data, PartitionKey: aws.String("660271"),
			SequenceNumber: aws.String(fmt.Sprintf("4959%056d", i)), ApproximateArrivalTimestamp: &arrived}
	}
	return recs
}

// BenchmarkBatchFromPage is the reader's work per GetRecords answer: converting the page
// for the transformer and cutting it into batches (with their span links).
func BenchmarkBatchFromPage(b *testing.B) {
	for _, n := range []int{500, limits.KinesisGetRecordsRecords} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			recs := gatewayPage(b, n)
			r := &shardReader{c: &Consumer{cfg: Config{Stream: "stats"}}, shard: types.Shard{ShardId: aws.String("shardId-000000000001")}}
			batch := newBatch(BatchConfig{MaxRecords: 500, MaxBytes: 4 << 20, MaxAge: time.Second})
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				for _, src := range r.toSources(recs) {
					batch.add(src)
					if batch.full() {
						batch.reset()
					}
				}
				batch.reset()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
		})
	}
}

// The trace context read from an envelope's raw bytes is the one the envelope decodes to,
// and a record without one (or no envelope at all) has none.
func TestRawTraceContextDecodesAsTheEnvelope(t *testing.T) {
	ev := &statsv1.StatEvent{EventId: "ev", Version: 3}
	for _, tc := range []map[string]string{
		nil,
		{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "rojo=00f067aa0ba902b7", "baggage": "k=v"},
	} {
		data, err := statevent.EncodeProducerEnvelope(ev, "scorer", time.Now(), tc)
		if err != nil {
			t.Fatal(err)
		}
		raw := rawTraceContext(data)
		if len(tc) == 0 {
			if raw != nil {
				t.Errorf("no trace context: raw %x, want none", raw)
			}
			continue
		}
		got, want := decodeTraceContext(raw), statevent.EnvelopeTraceContext(data)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("decoded %v, the envelope holds %v", got, want)
		}
	}
	if raw := rawTraceContext([]byte("not an envelope")); raw != nil {
		t.Errorf("garbage: raw %x, want none", raw)
	}
}
