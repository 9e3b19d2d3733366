package consumer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/consumer"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/lease"
)

// refusingTransformer refuses (INVALID_ARGUMENT) every batch holding a record whose data
// starts with "bad-transform", as a transformer does with a batch it cannot process.
type refusingTransformer struct {
	mu    sync.Mutex
	calls int
}

func (t *refusingTransformer) Transform(ctx context.Context, req *transformv1.TransformRequest, opts ...grpc.CallOption) (*transformv1.TransformResponse, error) {
	t.mu.Lock()
	t.calls++
	t.mu.Unlock()
	for _, r := range req.GetRecords() {
		if strings.HasPrefix(string(r.GetData()), "bad-transform") {
			return nil, status.Error(codes.InvalidArgument, "cannot transform "+string(r.GetData()))
		}
	}
	return passThroughTransformer{}.Transform(ctx, req, opts...)
}

// refusingWarehouse is the memory warehouse that refuses (INVALID_ARGUMENT) every Load
// holding a row whose event id starts with "bad-load" (the warehouse refusing one row of
// the batch), or, with refuseAll, every Load; down answers UNAVAILABLE; after downAfter
// successful commits it goes down by itself.
type refusingWarehouse struct {
	*memoryWarehouse

	mu         sync.Mutex
	refuseAll  bool
	down       bool
	downAfter  int // 0: never
	commits    int
	rejections []*warehousev1.Rejection
	loads      []*loadv1.LoadRequest // every Load that committed
}

func newRefusingWarehouse() *refusingWarehouse {
	return &refusingWarehouse{memoryWarehouse: newMemoryWarehouse()}
}

func (w *refusingWarehouse) Load(ctx context.Context, req *loadv1.LoadRequest, opts ...grpc.CallOption) (*loadv1.LoadResponse, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.down {
		return nil, status.Error(codes.Unavailable, "loader down")
	}
	if w.refuseAll {
		return nil, status.Error(codes.InvalidArgument, "refusing everything")
	}
	for _, row := range req.GetRows() {
		if strings.HasPrefix(row.GetEventId(), "bad-load") {
			return nil, status.Error(codes.InvalidArgument, "invalid byte sequence for encoding \"UTF8\": 0x00 (SQLSTATE 22021)")
		}
	}
	resp, err := w.memoryWarehouse.Load(ctx, req, opts...)
	if err != nil && status.Code(err) != codes.DeadlineExceeded { // a lost answer did commit
		return resp, err
	}
	w.rejections = append(w.rejections, req.GetRejections()...)
	w.loads = append(w.loads, req)
	w.commits++
	if w.downAfter > 0 && w.commits >= w.downAfter {
		w.down = true
	}
	return resp, err
}

func (w *refusingWarehouse) set(f func(w *refusingWarehouse)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(w)
}

func (w *refusingWarehouse) checkpoint(shardID string) string {
	cp, _ := w.GetCheckpoint(context.Background(), &loadv1.GetCheckpointRequest{ShardId: shardID})
	return cp.GetCheckpoint().GetSequenceNumber()
}

type runningConsumer struct {
	c    *consumer.Consumer
	stop func()
}

func runConsumer(t *testing.T, cfg consumer.Config, client *kinesis.Client, tr transformv1.TransformServiceClient, w loadv1.LoadServiceClient, reader sdkmetric.Reader) runningConsumer {
	t.Helper()
	var opts []sdkmetric.Option
	if reader != nil {
		opts = append(opts, sdkmetric.WithReader(reader))
	}
	provider := sdkmetric.NewMeterProvider(opts...)
	c, err := consumer.New(cfg, client, tr, w, newSoleOwner(), slog.New(slog.NewTextHandler(io.Discard, nil)), provider.Meter("test"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("consumer Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return runningConsumer{c: c, stop: stop}
}

func onlyShard(t *testing.T, client *kinesis.Client, name string) string {
	t.Helper()
	out, err := client.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil || len(out.Shards) != 1 {
		t.Fatalf("ListShards: %v (%d shards)", err, len(out.Shards))
	}
	return aws.ToString(out.Shards[0].ShardId)
}

// withBad returns n good records with the given bad ones put at their index.
func withBad(n int, bad map[int]string) (recs []putRecord, good []string) {
	for i := range n {
		data := fmt.Sprintf("a-%05d", i)
		if b, ok := bad[i]; ok {
			data = b
		} else {
			good = append(good, data)
		}
		recs = append(recs, putRecord{key: fmt.Sprintf("player-%d", i%3), data: data})
	}
	return recs, good
}

// A batch the transformer or the loader refuses permanently is bisected down to the
// records refused; each of those becomes exactly one dead letter, every other record
// exactly one row in stream order, and the checkpoint reaches the end of the shard.
func TestPermanentRefusalsAreIsolatedAndDeadLettered(t *testing.T) {
	checkRefusalsIsolated(t, inProcess)
}

// The same over gRPC, with the consumer's production clients: the rows pass through as
// bytes (rows.go) and the bisection, the dead letters and the lost answers work the same.
func TestPermanentRefusalsAreIsolatedAndDeadLetteredOverGRPC(t *testing.T) {
	checkRefusalsIsolated(t, overGRPC)
}

func checkRefusalsIsolated(t *testing.T, via func(*testing.T, transformv1.TransformServiceClient, loadv1.LoadServiceClient) (transformv1.TransformServiceClient, loadv1.LoadServiceClient)) {
	srv := kinesalitetest.Start(t)
	client := srv.Client(t)
	name := kinesalitetest.UniqueName(t)
	srv.CreateStream(t, name, 1)
	shardID := onlyShard(t, client, name)

	bad := map[int]string{
		0: "bad-transform-first", 17: "bad-load-17", 18: "bad-load-18", 19: "bad-transform-19",
		49: "bad-load-49", 50: "poison", 77: "bad-transform-77", 149: "bad-load-last",
	}
	recs, good := withBad(150, bad)
	last := put(t, client, name, recs)[shardID]

	w := newRefusingWarehouse()
	w.loseAnswer = 4 // the first commits (halves of the first bisection) commit, but their answers are lost
	tr, l := via(t, &refusingTransformer{}, w)
	rc := runConsumer(t, testConfig(name), client, tr, l, nil)
	waitUntil(t, 60*time.Second, "the checkpoint at the last record", func() bool { return w.checkpoint(shardID) == last })
	rc.stop()

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.loseAnswer != 0 {
		t.Errorf("%d lost answers left: the test did not lose the answers it meant to", w.loseAnswer)
	}
	if got := w.loaded[shardID]; strings.Join(got, ",") != strings.Join(good, ",") {
		t.Errorf("rows loaded:\n%v\nwant every good record once, in order:\n%v", got, good)
	}
	byData := map[string]*warehousev1.Rejection{}
	for _, r := range w.rejections {
		data := string(r.GetPayload())
		if byData[data] != nil {
			t.Errorf("record %s dead-lettered twice", data)
		}
		byData[data] = r
	}
	if len(byData) != len(bad) {
		t.Errorf("dead letters = %d, want %d: %v", len(byData), len(bad), byData)
	}
	for _, data := range bad {
		r := byData[data]
		var stage, reason string
		switch {
		case strings.HasPrefix(data, "bad-transform"):
			stage, reason = "transform", "refused_by_transformer"
		case strings.HasPrefix(data, "bad-load"):
			stage, reason = "load", "refused_by_loader"
		default:
			stage, reason = "decode", "test"
		}
		if r.GetStage() != stage || r.GetReason() != reason {
			t.Errorf("dead letter of %s: stage %q reason %q, want %q %q", data, r.GetStage(), r.GetReason(), stage, reason)
		}
		if r.GetPosition().GetShardId() != shardID || r.GetPosition().GetSequenceNumber() == "" {
			t.Errorf("dead letter of %s has no position: %v", data, r.GetPosition())
		}
		if stage != "decode" && !strings.Contains(r.GetDetail(), "InvalidArgument") {
			t.Errorf("dead letter of %s: detail %q does not carry the refusal", data, r.GetDetail())
		}
	}
	// Each commit started where the previous one ended (the CAS of the fake checks it);
	// the dead letters were committed alone.
	for _, l := range w.loads {
		for _, r := range l.GetRejections() {
			if r.GetStage() != "decode" && (len(l.GetRows()) != 0 || len(l.GetRejections()) != 1 || l.GetSequenceNumber() != r.GetPosition().GetSequenceNumber()) {
				t.Errorf("dead letter %s committed with %d rows and %d rejections up to %s", r.GetPayload(), len(l.GetRows()), len(l.GetRejections()), l.GetSequenceNumber())
			}
		}
	}
}

// A consumer that stops in the middle of a bisection (the warehouse goes away after the
// first half committed) leaves the checkpoint at that half; the next one resumes there and
// the result is the same: every good record once, every refused record one dead letter.
func TestStopMidBisectionResumesFromTheCommittedHalf(t *testing.T) {
	srv := kinesalitetest.Start(t)
	client := srv.Client(t)
	name := kinesalitetest.UniqueName(t)
	srv.CreateStream(t, name, 1)
	shardID := onlyShard(t, client, name)

	recs, good := withBad(40, map[int]string{31: "bad-load-31", 38: "bad-transform-38"})
	last := put(t, client, name, recs)[shardID]

	w := newRefusingWarehouse()
	w.downAfter = 1 // down right after the first commit: the first half of the first bisection
	cfg := testConfig(name)
	cfg.RPCTimeout = time.Second
	rc := runConsumer(t, cfg, client, &refusingTransformer{}, w, nil)
	waitUntil(t, 30*time.Second, "the first commit", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.commits == 1
	})
	rc.stop()
	mid := w.checkpoint(shardID)
	w.mu.Lock()
	if len(w.rejections) != 0 || mid == last || mid == "" {
		t.Fatalf("the first commit was not half a bisected batch: checkpoint %s (last %s), %d dead letters", mid, last, len(w.rejections))
	}
	w.mu.Unlock()

	w.set(func(w *refusingWarehouse) { w.down, w.downAfter = false, 0 })
	runConsumer(t, cfg, client, &refusingTransformer{}, w, nil)
	waitUntil(t, 60*time.Second, "the checkpoint at the last record", func() bool { return w.checkpoint(shardID) == last })

	w.mu.Lock()
	defer w.mu.Unlock()
	if got := w.loaded[shardID]; strings.Join(got, ",") != strings.Join(good, ",") {
		t.Errorf("rows loaded:\n%v\nwant every good record once, in order:\n%v", got, good)
	}
	var dead []string
	for _, r := range w.rejections {
		dead = append(dead, string(r.GetPayload())+"/"+r.GetStage())
	}
	if strings.Join(dead, ",") != "bad-load-31/load,bad-transform-38/transform" {
		t.Errorf("dead letters = %v, want bad-load-31/load, bad-transform-38/transform", dead)
	}
}

func stalledGauge(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "boxscore.consumer.shard_stalled" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Gauge[int64]).DataPoints {
				shard, _ := dp.Attributes.Value("shard_id")
				reason, _ := dp.Attributes.Value("reason")
				out[shard.AsString()+"/"+reason.AsString()] = dp.Value
			}
		}
	}
	return out
}

// A batch whose Load keeps failing transiently past --stall-after marks the shard stalled
// (metric, Stalled, readiness); it clears when the batch commits. Nothing is skipped.
func TestTransientFailuresPastTheBoundStallTheShardVisibly(t *testing.T) {
	srv := kinesalitetest.Start(t)
	client := srv.Client(t)
	name := kinesalitetest.UniqueName(t)
	srv.CreateStream(t, name, 1)
	shardID := onlyShard(t, client, name)
	last := put(t, client, name, records("a", 20, 3))[shardID]

	w := newRefusingWarehouse()
	w.down = true
	cfg := testConfig(name)
	cfg.StallAfter = 300 * time.Millisecond
	reader := sdkmetric.NewManualReader()
	rc := runConsumer(t, cfg, client, passThroughTransformer{}, w, reader)

	waitUntil(t, 30*time.Second, "the shard reported stalled", func() bool { return len(rc.c.Stalled()) == 1 })
	st := rc.c.Stalled()[shardID]
	if st.Reason != consumer.StallTransientRetries || st.Op != "load" || st.Since.IsZero() {
		t.Errorf("stall = %+v, want transient_retries of load", st)
	}
	if err := rc.c.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), shardID) {
		t.Errorf("Ready = %v, want an error naming %s", err, shardID)
	}
	if g := stalledGauge(t, reader); g[shardID+"/transient_retries"] != 1 {
		t.Errorf("shard_stalled = %v, want 1 for %s/transient_retries", g, shardID)
	}
	if w.checkpoint(shardID) != "" {
		t.Fatal("a batch committed while the loader was down")
	}

	w.set(func(w *refusingWarehouse) { w.down = false })
	waitUntil(t, 30*time.Second, "the batch committed", func() bool { return w.checkpoint(shardID) == last })
	waitUntil(t, 10*time.Second, "the stall cleared", func() bool { return len(rc.c.Stalled()) == 0 })
	if err := rc.c.Ready(context.Background()); err != nil {
		t.Errorf("Ready after the commit = %v", err)
	}
	if g := stalledGauge(t, reader); g[shardID+"/transient_retries"] != 0 {
		t.Errorf("shard_stalled after the commit = %v, want 0", g)
	}
	if n := len(w.allLoaded()); n != 20 {
		t.Errorf("rows = %d, want 20", n)
	}
}

// When even the dead letter of a single record is refused, nothing smaller can be set
// aside: the reader restarts from the same checkpoint, and past --stall-after the shard is
// reported stalled with reason reader_restarts, not looping silently.
func TestRefusedDeadLetterStallsTheShardVisibly(t *testing.T) {
	srv := kinesalitetest.Start(t)
	client := srv.Client(t)
	name := kinesalitetest.UniqueName(t)
	srv.CreateStream(t, name, 1)
	shardID := onlyShard(t, client, name)
	last := put(t, client, name, records("a", 4, 2))[shardID]

	w := newRefusingWarehouse()
	w.refuseAll = true
	cfg := testConfig(name)
	cfg.StallAfter = 300 * time.Millisecond
	rc := runConsumer(t, cfg, client, passThroughTransformer{}, w, nil)
	waitUntil(t, 30*time.Second, "the shard reported stalled", func() bool {
		return rc.c.Stalled()[shardID].Reason == consumer.StallReaderRestarts
	})
	if err := rc.c.Ready(context.Background()); err == nil {
		t.Error("Ready while stalled = nil")
	}
	w.set(func(w *refusingWarehouse) { w.refuseAll = false })
	waitUntil(t, 30*time.Second, "the checkpoint at the last record", func() bool { return w.checkpoint(shardID) == last })
	waitUntil(t, 10*time.Second, "the stall cleared", func() bool { return rc.c.Ready(context.Background()) == nil })
	if n := len(w.allLoaded()); n != 4 {
		t.Errorf("rows = %d, want 4", n)
	}
}

// A stalled shard whose lease this replica loses is no longer reported by it: readiness
// turns healthy again, whether its reader was running or waiting to restart.
func TestLosingAStalledShardClearsItsStall(t *testing.T) {
	srv := kinesalitetest.Start(t)
	client := srv.Client(t)
	name := kinesalitetest.UniqueName(t)
	srv.CreateStream(t, name, 1)
	shardID := onlyShard(t, client, name)
	put(t, client, name, records("a", 4, 2))

	w := newRefusingWarehouse()
	w.refuseAll = true
	cfg := testConfig(name)
	cfg.StallAfter = 300 * time.Millisecond
	leases := &scriptedLeases{events: make(chan lease.Event, 8)}
	c, err := consumer.New(cfg, client, passThroughTransformer{}, w, leases, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("consumer Run: %v", err)
		}
	})
	leases.events <- lease.Event{Kind: lease.Acquired, ShardID: shardID, Token: 1}
	waitUntil(t, 30*time.Second, "the shard reported stalled", func() bool { return len(c.Stalled()) == 1 })
	leases.events <- lease.Event{Kind: lease.Lost, ShardID: shardID, Token: 1}
	waitUntil(t, 30*time.Second, "the stall forgotten with the lease", func() bool {
		return len(c.Stalled()) == 0 && c.Ready(context.Background()) == nil
	})
	if cp := w.checkpoint(shardID); cp != "" {
		t.Errorf("checkpoint %q: nothing may commit while every Load is refused", cp)
	}
}
