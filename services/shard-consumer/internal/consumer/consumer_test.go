package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
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

// passThroughTransformer turns each record into a row whose event id is the record's data,
// so the test can follow every record into the warehouse stand-in.
type passThroughTransformer struct{}

func (passThroughTransformer) Transform(_ context.Context, req *transformv1.TransformRequest, _ ...grpc.CallOption) (*transformv1.TransformResponse, error) {
	resp := &transformv1.TransformResponse{}
	for _, r := range req.GetRecords() {
		if string(r.GetData()) == "poison" {
			resp.Rejections = append(resp.Rejections, &warehousev1.Rejection{Position: r.GetPosition(), Stage: "decode", Reason: "test", Payload: r.GetData()})
			continue
		}
		resp.Rows = append(resp.Rows, &warehousev1.BattingGameRow{EventId: string(r.GetData()), Position: r.GetPosition()})
	}
	return resp, nil
}

// memoryWarehouse is the loader's contract in memory: rows, rejections and the checkpoint
// move together, and the checkpoint is a compare-and-set.
type memoryWarehouse struct {
	mu          sync.Mutex
	checkpoints map[string]*loadv1.Checkpoint
	loaded      map[string][]string // shard -> event ids in commit order
	rejected    []string
	commits     []string // shard ids in commit order
	failNext    int      // fail this many Load calls with UNAVAILABLE before doing anything
	loseAnswer  int      // commit this many Load calls but answer DEADLINE_EXCEEDED
}

func newMemoryWarehouse() *memoryWarehouse {
	return &memoryWarehouse{checkpoints: map[string]*loadv1.Checkpoint{}, loaded: map[string][]string{}}
}

func (w *memoryWarehouse) Load(_ context.Context, req *loadv1.LoadRequest, _ ...grpc.CallOption) (*loadv1.LoadResponse, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failNext > 0 {
		w.failNext--
		return nil, status.Error(codes.Unavailable, "loader restarting")
	}
	stored := w.checkpoints[req.GetShardId()]
	if stored.GetSequenceNumber() != req.GetExpectedSequenceNumber() || stored.GetLeaseToken() != req.GetLeaseToken() {
		return nil, status.Error(codes.FailedPrecondition, "checkpoint mismatch")
	}
	for _, row := range req.GetRows() {
		w.loaded[req.GetShardId()] = append(w.loaded[req.GetShardId()], row.GetEventId())
	}
	for _, rej := range req.GetRejections() {
		w.rejected = append(w.rejected, rej.GetPosition().GetSequenceNumber())
	}
	cp := &loadv1.Checkpoint{Stream: req.GetStream(), ShardId: req.GetShardId(), SequenceNumber: req.GetSequenceNumber(),
		ShardEnd: req.GetShardEnd(), LeaseToken: stored.GetLeaseToken(), Owner: stored.GetOwner()}
	w.checkpoints[req.GetShardId()] = cp
	w.commits = append(w.commits, req.GetShardId())
	if w.loseAnswer > 0 {
		w.loseAnswer--
		return nil, status.Error(codes.DeadlineExceeded, "answer lost")
	}
	return &loadv1.LoadResponse{Checkpoint: cp, Inserted: int32(len(req.GetRows()))}, nil
}

func (w *memoryWarehouse) ClaimShard(_ context.Context, req *loadv1.ClaimShardRequest, _ ...grpc.CallOption) (*loadv1.ClaimShardResponse, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cp := w.checkpoints[req.GetShardId()]
	if cp == nil {
		cp = &loadv1.Checkpoint{Stream: req.GetStream(), ShardId: req.GetShardId()}
	}
	if req.GetLeaseToken() < cp.GetLeaseToken() {
		return nil, status.Error(codes.FailedPrecondition, "claimed with a greater token")
	}
	claimed := &loadv1.Checkpoint{Stream: cp.GetStream(), ShardId: cp.GetShardId(), SequenceNumber: cp.GetSequenceNumber(),
		ShardEnd: cp.GetShardEnd(), LeaseToken: req.GetLeaseToken(), Owner: req.GetOwner()}
	w.checkpoints[req.GetShardId()] = claimed
	return &loadv1.ClaimShardResponse{Checkpoint: claimed}, nil
}

func (w *memoryWarehouse) GetCheckpoint(_ context.Context, req *loadv1.GetCheckpointRequest, _ ...grpc.CallOption) (*loadv1.GetCheckpointResponse, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cp := w.checkpoints[req.GetShardId()]
	if cp == nil {
		cp = &loadv1.Checkpoint{Stream: req.GetStream(), ShardId: req.GetShardId()}
	}
	return &loadv1.GetCheckpointResponse{Checkpoint: cp}, nil
}

func (w *memoryWarehouse) allLoaded() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := map[string]int{}
	for _, ids := range w.loaded {
		for _, id := range ids {
			seen[id]++
		}
	}
	return seen
}

func testConfig(streamName string) consumer.Config {
	return consumer.Config{
		Stream:            streamName,
		ConsumerID:        "test",
		PollInterval:      200 * time.Millisecond,
		ShardSyncInterval: time.Second,
		RPCTimeout:        5 * time.Second,
		Batch:             consumer.BatchConfig{MaxRecords: 50, MaxBytes: 1 << 20, MaxAge: 100 * time.Millisecond},
		Retry:             consumer.RetryPolicy{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond},
	}
}

type putRecord struct{ key, data string }

// put writes records one PutRecords call at a time and returns each record's sequence
// number by data, and the last sequence number of every shard.
func put(t testing.TB, client *kinesis.Client, streamName string, records []putRecord) map[string]string {
	t.Helper()
	lastByShard := map[string]string{}
	for start := 0; start < len(records); start += 500 {
		end := min(start+500, len(records))
		in := &kinesis.PutRecordsInput{StreamName: aws.String(streamName)}
		for _, r := range records[start:end] {
			in.Records = append(in.Records, types.PutRecordsRequestEntry{PartitionKey: aws.String(r.key), Data: []byte(r.data)})
		}
		out, err := client.PutRecords(context.Background(), in)
		if err != nil {
			t.Fatalf("PutRecords: %v", err)
		}
		if aws.ToInt32(out.FailedRecordCount) != 0 {
			t.Fatalf("PutRecords: %d failed", aws.ToInt32(out.FailedRecordCount))
		}
		for _, e := range out.Records {
			shard, seq := aws.ToString(e.ShardId), aws.ToString(e.SequenceNumber)
			if greater(seq, lastByShard[shard]) {
				lastByShard[shard] = seq
			}
		}
	}
	return lastByShard
}

func greater(a, b string) bool {
	if b == "" {
		return true
	}
	x, _ := new(big.Int).SetString(a, 10)
	y, _ := new(big.Int).SetString(b, 10)
	return x.Cmp(y) > 0
}

func startConsumer(t *testing.T, client *kinesis.Client, cfg consumer.Config, w *memoryWarehouse) (stop func()) {
	t.Helper()
	c, err := consumer.New(cfg, client, passThroughTransformer{}, w, newSoleOwner(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("consumer Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func records(prefix string, n, players int) []putRecord {
	out := make([]putRecord, n)
	for i := range out {
		out[i] = putRecord{key: fmt.Sprintf("player-%d", i%players), data: fmt.Sprintf("%s-%05d", prefix, i)}
	}
	return out
}

func TestReadsEveryShardOnceAndCheckpointsTheLastRecord(t *testing.T) {
	srv := kinesalitetest.Start(t)
	client := srv.Client(t)
	name := kinesalitetest.UniqueName(t)
	srv.CreateStream(t, name, 3)

	w := newMemoryWarehouse()
	w.failNext = 3   // a loader restarting at start-up
	w.loseAnswer = 1 // and one commit whose answer is lost
	first := records("a", 600, 7)
	first = append(first, putRecord{key: "player-1", data: "poison"})
	last := put(t, client, name, first)
	stop := startConsumer(t, client, testConfig(name), w)
	waitUntil(t, 20*time.Second, "600 rows", func() bool { return len(w.allLoaded()) == 600 })

	// A consumer restarted later resumes after its checkpoint: nothing is loaded twice.
	stop()
	second := records("b", 200, 7)
	for shard, seq := range put(t, client, name, second) {
		last[shard] = seq
	}
	startConsumer(t, client, testConfig(name), w)
	waitUntil(t, 20*time.Second, "800 rows", func() bool { return len(w.allLoaded()) == 800 })
	waitUntil(t, 5*time.Second, "checkpoints at the last record of every shard", func() bool {
		for shard, seq := range last {
			cp, _ := w.GetCheckpoint(context.Background(), &loadv1.GetCheckpointRequest{ShardId: shard})
			if cp.GetCheckpoint().GetSequenceNumber() != seq {
				return false
			}
		}
		return true
	})
	for id, n := range w.allLoaded() {
		if n != 1 {
			t.Errorf("event %s loaded %d times, want once", id, n)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.rejected) != 1 {
		t.Errorf("rejections = %d, want 1 (the poison record)", len(w.rejected))
	}
	// Per player, records are loaded in the order they were put (one shard per key).
	for shard, ids := range w.loaded {
		lastIndex := map[string]string{}
		for _, id := range ids {
			var prefix string
			var i int
			if _, err := fmt.Sscanf(id, "%1s-%d", &prefix, &i); err != nil {
				t.Fatalf("loaded id %q: %v", id, err)
			}
			key := fmt.Sprintf("%d", i%7)
			if prev, ok := lastIndex[key]; ok && prev > id {
				t.Errorf("shard %s: %s loaded after %s for the same player", shard, id, prev)
			}
			lastIndex[key] = id
		}
	}
}

func TestClosedParentIsDrainedBeforeItsChildren(t *testing.T) {
	srv := kinesalitetest.Start(t)
	client := srv.Client(t)
	name := kinesalitetest.UniqueName(t)
	srv.CreateStream(t, name, 1)

	before := records("a", 120, 5)
	put(t, client, name, before)
	shards, err := client.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	parent := shards.Shards[0]
	// Split the only shard in the middle of its hash key range.
	lo, _ := new(big.Int).SetString(aws.ToString(parent.HashKeyRange.StartingHashKey), 10)
	hi, _ := new(big.Int).SetString(aws.ToString(parent.HashKeyRange.EndingHashKey), 10)
	mid := new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1)
	if _, err := client.SplitShard(context.Background(), &kinesis.SplitShardInput{
		StreamName: aws.String(name), ShardToSplit: parent.ShardId, NewStartingHashKey: aws.String(mid.String()),
	}); err != nil {
		t.Fatalf("SplitShard: %v", err)
	}
	waitActive(t, client, name)
	after := records("b", 120, 5)
	put(t, client, name, after)

	w := newMemoryWarehouse()
	startConsumer(t, client, testConfig(name), w)
	waitUntil(t, 30*time.Second, "240 rows", func() bool { return len(w.allLoaded()) == 240 })

	w.mu.Lock()
	defer w.mu.Unlock()
	parentID := aws.ToString(parent.ShardId)
	if !w.checkpoints[parentID].GetShardEnd() {
		t.Fatalf("parent %s not checkpointed as finished", parentID)
	}
	// Every child commit comes after the parent's last (shard-end) commit.
	lastParent := -1
	firstChild := len(w.commits)
	for i, shard := range w.commits {
		if shard == parentID {
			lastParent = i
		} else if i < firstChild {
			firstChild = i
		}
	}
	if firstChild < lastParent {
		t.Fatalf("a child shard was committed (commit %d) before the parent finished (commit %d): %v", firstChild, lastParent, w.commits)
	}
	if got := len(w.loaded[parentID]); got != 120 {
		t.Fatalf("parent rows = %d, want 120", got)
	}
}

func waitActive(t *testing.T, client *kinesis.Client, name string) {
	t.Helper()
	waitUntil(t, 10*time.Second, "stream ACTIVE after the reshard", func() bool {
		out, err := client.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		return err == nil && out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive
	})
}

// soleOwner is a consumer group of one: every shard is acquired at once, with a token
// greater than the last run's, as a lease store would hand out.
type soleOwner struct {
	mu     sync.Mutex
	held   map[string]bool
	events chan lease.Event
}

var soleOwnerTokens atomic.Int64

func newSoleOwner() *soleOwner {
	return &soleOwner{held: map[string]bool{}, events: make(chan lease.Event, 1024)}
}

func (o *soleOwner) Run(ctx context.Context) error { <-ctx.Done(); return nil }

func (o *soleOwner) SetShards(ids []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, id := range ids {
		if !o.held[id] {
			o.held[id] = true
			o.events <- lease.Event{Kind: lease.Acquired, ShardID: id, Token: soleOwnerTokens.Add(1)}
		}
	}
}

func (o *soleOwner) Events() <-chan lease.Event { return o.events }

func (o *soleOwner) Release(context.Context, string) error { return nil }

// scriptedLeases hands out leases as the test says.
type scriptedLeases struct{ events chan lease.Event }

func (s *scriptedLeases) Run(ctx context.Context) error         { <-ctx.Done(); return nil }
func (s *scriptedLeases) SetShards([]string)                    {}
func (s *scriptedLeases) Events() <-chan lease.Event            { return s.events }
func (s *scriptedLeases) Release(context.Context, string) error { return nil }

// A replica that resumes after a pause loses its old lease of a shard and may take the
// shard back under a new token at once: the late loss of the old lease must not stop it
// from reading under the new one.
func TestLeaseRetakenUnderANewTokenIsRead(t *testing.T) {
	srv := kinesalitetest.Start(t)
	client := srv.Client(t)
	name := kinesalitetest.UniqueName(t)
	srv.CreateStream(t, name, 1)
	shards, err := client.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	shardID := aws.ToString(shards.Shards[0].ShardId)

	w := newMemoryWarehouse()
	leases := &scriptedLeases{events: make(chan lease.Event, 8)}
	c, err := consumer.New(testConfig(name), client, passThroughTransformer{}, w, leases, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("consumer stopped with %v", err)
		}
	})

	put(t, client, name, records("a", 50, 3))
	leases.events <- lease.Event{Kind: lease.Acquired, ShardID: shardID, Token: 1}
	waitUntil(t, 20*time.Second, "50 rows under token 1", func() bool { return len(w.allLoaded()) == 50 })

	leases.events <- lease.Event{Kind: lease.Acquired, ShardID: shardID, Token: 2}
	leases.events <- lease.Event{Kind: lease.Lost, ShardID: shardID, Token: 1}
	put(t, client, name, records("b", 50, 3))
	waitUntil(t, 20*time.Second, "100 rows, the last under token 2", func() bool {
		cp, _ := w.GetCheckpoint(context.Background(), &loadv1.GetCheckpointRequest{ShardId: shardID})
		return len(w.allLoaded()) == 100 && cp.GetCheckpoint().GetLeaseToken() == 2
	})
}
