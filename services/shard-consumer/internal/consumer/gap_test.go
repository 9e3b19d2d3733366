package consumer_test

import (
	"context"
	"fmt"
	"strings"
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
// shard read on from its oldest record. This is how Kinesis shows a trimmed checkpoint (it
// trims expired records in the background); kinesalite only drops expired records when
// they are read, so here the stale checkpoint is a sequence number of another shard: older
// than every record of this one. TestExpiredCheckpointIsAGap lets records expire for real.
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

// putInOrder puts records one by one on a one-shard stream and returns their sequence
// numbers in order.
func putInOrder(t *testing.T, client *kinesis.Client, name string, recs []putRecord) []string {
	t.Helper()
	var seqs []string
	for _, r := range recs {
		out, err := client.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String(name),
			PartitionKey: aws.String(r.key), Data: []byte(r.data)})
		if err != nil {
			t.Fatalf("PutRecord: %v", err)
		}
		seqs = append(seqs, aws.ToString(out.SequenceNumber))
	}
	return seqs
}

// clockedStream is a one-shard stream on a kinesalite of the test's own whose clock the
// test moves (the shared one's clock must not move: other tests' records would expire).
func clockedStream(t *testing.T) (*kinesalitetest.Process, *kinesis.Client, string) {
	t.Helper()
	p := kinesalitetest.Launch(t, kinesalitetest.Options{ClockControl: true})
	name := kinesalitetest.UniqueName(t)
	p.CreateStream(t, name, 1)
	return p, p.Client(t), name
}

// Records really expired: the consumer checkpointed, stopped; records A were put; the
// stream's clock moved past its retention (24 h) and records B were put. kinesalite drops
// expired records only when they are read (an empty page at TRIM_HORIZON, as for an empty
// shard), so the oldest record alone does not tell: the checkpoint's own record, no longer
// served, does. One trim_horizon gap after the checkpoint and before B's first record,
// counted once; every B loaded once, no A; the checkpoint at B's last record.
func TestExpiredCheckpointIsAGap(t *testing.T) {
	p, client, name := clockedStream(t)
	first := putInOrder(t, client, name, records("read", 20, 5))
	w := &gapWarehouse{memoryWarehouse: newMemoryWarehouse()}
	run := runConsumer(t, testConfig(name), client, passThroughTransformer{}, w, nil)
	shard := "shardId-000000000000"
	checkpoint := first[len(first)-1]
	waitUntil(t, 20*time.Second, "the first records checkpointed", func() bool {
		cp, _ := w.GetCheckpoint(context.Background(), &loadv1.GetCheckpointRequest{ShardId: shard})
		return cp.GetCheckpoint().GetSequenceNumber() == checkpoint
	})
	run.stop()

	putInOrder(t, client, name, records("expired", 10, 5))
	p.AdvanceClock(t, 25*time.Hour)
	b := putInOrder(t, client, name, records("b", 15, 5))

	reader := sdkmetric.NewManualReader()
	run = runConsumer(t, testConfig(name), client, passThroughTransformer{}, w, reader)
	waitUntil(t, 20*time.Second, "the checkpoint at B's last record", func() bool {
		cp, _ := w.GetCheckpoint(context.Background(), &loadv1.GetCheckpointRequest{ShardId: shard})
		return cp.GetCheckpoint().GetSequenceNumber() == b[len(b)-1]
	})
	run.stop()
	loaded := w.allLoaded()
	for i := range 15 {
		if id := fmt.Sprintf("b-%05d", i); loaded[id] != 1 {
			t.Errorf("event %s loaded %d times, want once", id, loaded[id])
		}
	}
	for id, n := range loaded {
		if strings.HasPrefix(id, "expired-") || n != 1 {
			t.Errorf("event %s loaded %d times, want once and no expired one", id, n)
		}
	}
	if len(loaded) != 35 {
		t.Errorf("%d events loaded, want 35", len(loaded))
	}
	gaps := w.recorded()
	if len(gaps) != 1 || gaps[0].GetReason() != "trim_horizon" || gaps[0].GetAfterSequenceNumber() != checkpoint ||
		gaps[0].GetBeforeSequenceNumber() != b[0] {
		t.Fatalf("gaps = %v, want one trim_horizon gap after %s before %s", gaps, checkpoint, b[0])
	}
	if got := gapCount(t, reader); got["trim_horizon"] != 1 {
		t.Errorf("boxscore.consumer.gaps = %v, want trim_horizon 1", got)
	}
}

// Records before the checkpoint expired, the checkpoint's own record did not: no gap. At
// TRIM_HORIZON kinesalite answers an empty page (its first record expired), which must not
// be taken for a trimmed checkpoint.
func TestExpiredRecordsBeforeALiveCheckpointAreNoGap(t *testing.T) {
	p, client, name := clockedStream(t)
	putInOrder(t, client, name, records("old", 5, 5))
	p.AdvanceClock(t, 23*time.Hour)
	recent := putInOrder(t, client, name, records("recent", 10, 5))
	w := &gapWarehouse{memoryWarehouse: newMemoryWarehouse()}
	run := runConsumer(t, testConfig(name), client, passThroughTransformer{}, w, nil)
	shard := "shardId-000000000000"
	waitUntil(t, 20*time.Second, "the first records checkpointed", func() bool {
		cp, _ := w.GetCheckpoint(context.Background(), &loadv1.GetCheckpointRequest{ShardId: shard})
		return cp.GetCheckpoint().GetSequenceNumber() == recent[len(recent)-1]
	})
	run.stop()

	p.AdvanceClock(t, 2*time.Hour) // "old" is 25 h old now, "recent" 2 h
	later := putInOrder(t, client, name, records("later", 5, 5))
	reader := sdkmetric.NewManualReader()
	run = runConsumer(t, testConfig(name), client, passThroughTransformer{}, w, reader)
	waitUntil(t, 20*time.Second, "the checkpoint at the last record", func() bool {
		cp, _ := w.GetCheckpoint(context.Background(), &loadv1.GetCheckpointRequest{ShardId: shard})
		return cp.GetCheckpoint().GetSequenceNumber() == later[len(later)-1]
	})
	run.stop()
	if gaps := w.recorded(); len(gaps) != 0 {
		t.Errorf("gaps = %v, want none (the checkpoint's record is still served)", gaps)
	}
	if got := gapCount(t, reader); got["trim_horizon"] != 0 {
		t.Errorf("boxscore.consumer.gaps = %v, want none", got)
	}
	loaded := w.allLoaded()
	for id, n := range loaded {
		if n != 1 {
			t.Errorf("event %s loaded %d times, want once", id, n)
		}
	}
	if len(loaded) != 20 {
		t.Errorf("%d events loaded, want 20", len(loaded))
	}
}
