package consumer_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
)

// gapWarehouse is the in-memory warehouse that also keeps the gaps Loads report.
type gapWarehouse struct {
	*memoryWarehouse
	mu   sync.Mutex
	gaps []*loadv1.StreamGap
}

func (w *gapWarehouse) Load(ctx context.Context, req *loadv1.LoadRequest, opts ...grpc.CallOption) (*loadv1.LoadResponse, error) {
	resp, err := w.memoryWarehouse.Load(ctx, req, opts...)
	if err == nil && req.GetGap() != nil {
		w.mu.Lock()
		w.gaps = append(w.gaps, proto.CloneOf(req.GetGap()))
		w.mu.Unlock()
	}
	return resp, err
}

func (w *gapWarehouse) recorded() []*loadv1.StreamGap {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*loadv1.StreamGap(nil), w.gaps...)
}

func gapCount(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "boxscore.consumer.gaps" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				reason, _ := dp.Attributes.Value("reason")
				out[reason.AsString()] += dp.Value
			}
		}
	}
	return out
}

// A checkpoint older than the shard's oldest record (its record is no longer in the shard)
// is a gap: recorded with the first batch read from the oldest record, counted, and the
// shard read on from its oldest record. kinesalite cannot trim (its retention is at least
// 24 hours), so the stale checkpoint is a sequence number of an older stream: older than
// every record of this one, exactly what a trimmed checkpoint looks like.
func TestCheckpointOlderThanTheOldestRecordIsAGap(t *testing.T) {
	srv := kinesalitetest.Start(t)
	client := srv.Client(t)
	name := kinesalitetest.UniqueName(t)
	srv.CreateStream(t, name, 2)
	recs := records("g", 30, 7)
	lasts := put(t, client, name, recs)
	if len(lasts) != 2 {
		t.Fatalf("precondition: records reached %d shards, want 2", len(lasts))
	}
	// The shard whose first record is the greater is the one with the stale checkpoint:
	// the other shard's first sequence number, older than every record of this shard.
	var shard, stale, first, last string
	firsts := map[string]string{}
	for s := range lasts {
		firsts[s] = firstSequenceNumber(t, client, name, s)
	}
	for s, f := range firsts {
		for other, o := range firsts {
			if other != s && greater(f, o) {
				shard, first, stale, last = s, f, o, lasts[s]
			}
		}
	}
	if shard == "" {
		t.Fatalf("precondition: no shard's first record is after another's: %v", firsts)
	}
	t.Logf("checkpoint of %s set to %s, older than its first record %s", shard, stale, first)

	w := &gapWarehouse{memoryWarehouse: newMemoryWarehouse()}
	w.checkpoints[shard] = &loadv1.Checkpoint{Stream: name, ShardId: shard, SequenceNumber: stale}
	reader := sdkmetric.NewManualReader()
	run := runConsumer(t, testConfig(name), client, passThroughTransformer{}, w, reader)
	waitUntil(t, 20*time.Second, "30 rows", func() bool { return len(w.allLoaded()) == 30 })
	waitUntil(t, 5*time.Second, "the checkpoint at the shard's last record", func() bool {
		cp, _ := w.GetCheckpoint(context.Background(), &loadv1.GetCheckpointRequest{ShardId: shard})
		return cp.GetCheckpoint().GetSequenceNumber() == last
	})
	run.stop()
	for id, n := range w.allLoaded() {
		if n != 1 {
			t.Errorf("event %s loaded %d times, want once", id, n)
		}
	}
	gaps := w.recorded()
	if len(gaps) != 1 || gaps[0].GetReason() != "trim_horizon" || gaps[0].GetAfterSequenceNumber() != stale ||
		gaps[0].GetBeforeSequenceNumber() != first {
		t.Fatalf("gaps = %v, want one trim_horizon gap after %s before %s", gaps, stale, first)
	}
	if got := gapCount(t, reader); got["trim_horizon"] != 1 {
		t.Errorf("boxscore.consumer.gaps = %v, want trim_horizon 1", got)
	}

	// Restarted at a checkpoint whose record is still in the shard: no gap, nothing again.
	put(t, client, name, records("h", 10, 7))
	reader2 := sdkmetric.NewManualReader()
	runConsumer(t, testConfig(name), client, passThroughTransformer{}, w, reader2)
	waitUntil(t, 20*time.Second, "40 rows", func() bool { return len(w.allLoaded()) == 40 })
	if gaps := w.recorded(); len(gaps) != 1 {
		t.Errorf("gaps after a restart at a live checkpoint = %v, want still the one", gaps)
	}
	if got := gapCount(t, reader2); got["trim_horizon"] != 0 {
		t.Errorf("boxscore.consumer.gaps after a restart at a live checkpoint = %v, want none", got)
	}
	for id, n := range w.allLoaded() {
		if n != 1 {
			t.Errorf("event %s loaded %d times, want once", id, n)
		}
	}
}

func firstSequenceNumber(t *testing.T, client *kinesis.Client, name, shard string) string {
	t.Helper()
	it, err := client.GetShardIterator(context.Background(), &kinesis.GetShardIteratorInput{StreamName: aws.String(name),
		ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	out, err := client.GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(1)})
	if err != nil || len(out.Records) == 0 {
		t.Fatalf("first record: %v (%d records)", err, len(out.Records))
	}
	return aws.ToString(out.Records[0].SequenceNumber)
}
