package consumer_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/consumer"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/lease"
)

// answersCounted is the real kinesalite client, counting the GetRecords answers that
// carried records (the trim-horizon probes, which ask for one record, aside).
type answersCounted struct {
	*kinesis.Client
	answers atomic.Int64
}

func (a *answersCounted) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	out, err := a.Client.GetRecords(ctx, in, optFns...)
	if err == nil && len(out.Records) > 0 && aws.ToInt32(in.Limit) > 1 {
		a.answers.Add(1)
	}
	return out, err
}

// loadLog is the memory warehouse with every committed Load kept in order, and a hook run
// before each Load (the n-th, counted from 1) to hold it.
type loadLog struct {
	*memoryWarehouse
	before func(n int)

	mu    sync.Mutex
	calls int
	loads []*loadv1.LoadRequest
}

func (l *loadLog) Load(ctx context.Context, req *loadv1.LoadRequest, opts ...grpc.CallOption) (*loadv1.LoadResponse, error) {
	l.mu.Lock()
	l.calls++
	n := l.calls
	l.mu.Unlock()
	if l.before != nil {
		l.before(n)
	}
	resp, err := l.memoryWarehouse.Load(ctx, req, opts...)
	if err == nil {
		l.mu.Lock()
		l.loads = append(l.loads, req)
		l.mu.Unlock()
	}
	return resp, err
}

// checkChain checks that the committed loads form one chain of compare-and-sets, each
// starting where the previous ended, as without read-ahead.
func (l *loadLog) checkChain(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	last := map[string]string{}
	for i, req := range l.loads {
		if req.GetExpectedSequenceNumber() != last[req.GetShardId()] {
			t.Errorf("load %d expects checkpoint %q, the previous load ended at %q", i, req.GetExpectedSequenceNumber(), last[req.GetShardId()])
		}
		last[req.GetShardId()] = req.GetSequenceNumber()
	}
}

func (l *loadLog) committedLoads() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.loads)
}

// loadedInOrder is the event ids loaded on the stream's only shard, in commit order.
func (w *memoryWarehouse) loadedInOrder() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ids := range w.loaded {
		return append([]string(nil), ids...)
	}
	return nil
}

func checkLoadedInPutOrder(t *testing.T, w *memoryWarehouse, want []putRecord) {
	t.Helper()
	got := w.loadedInOrder()
	if len(got) != len(want) {
		t.Fatalf("%d rows loaded, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i].data {
			t.Fatalf("row %d is %s, want %s: the shard's order was not kept", i, got[i], want[i].data)
		}
	}
}

func oneShardStream(t *testing.T) (*answersCounted, string, string) {
	t.Helper()
	srv := kinesalitetest.Start(t)
	client := srv.Client(t)
	name := kinesalitetest.UniqueName(t)
	srv.CreateStream(t, name, 1)
	shards, err := client.ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return &answersCounted{Client: client}, name, aws.ToString(shards.Shards[0].ShardId)
}

// run runs c until the test ends.
func run(t *testing.T, c *consumer.Consumer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("consumer stopped with %v", err)
		}
	})
}

// readAheadConfig cuts batches of 50 that never age (only a full batch or a caught-up
// shard flushes) and lets a shard hold 200 records.
func readAheadConfig(name string) consumer.Config {
	cfg := testConfig(name)
	cfg.Batch.MaxAge = time.Hour
	cfg.Read = consumer.ReadConfig{GetRecordsLimit: 10_000, ReadAheadRecords: 200, ReadAheadBytes: 1 << 20}
	return cfg
}

// With read-ahead the loader sees the same chain of batches, in the shard's order, while
// GetRecords answers arrive during a load; the reader never holds more than its bound.
func TestReadAheadKeepsOrderAndCheckpointsWithinTheMemoryBound(t *testing.T) {
	stream, name, _ := oneShardStream(t)
	all := records("a", 1200, 3)
	put(t, stream.Client, name, all)

	w := &loadLog{memoryWarehouse: newMemoryWarehouse()}
	overlapped := make(chan bool, 1)
	w.before = func(n int) {
		if n != 3 {
			return
		}
		// Held until a later answer arrives: a reader that read only between loads would
		// never get one.
		deadline := time.After(30 * time.Second)
		for stream.answers.Load() < 2 {
			select {
			case <-deadline:
				overlapped <- false
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
		overlapped <- true
	}
	cfg := readAheadConfig(name)
	c, err := consumer.New(cfg, stream, passThroughTransformer{}, w, newSoleOwner(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)

	waitUntil(t, 60*time.Second, "1200 rows", func() bool { return len(w.allLoaded()) == 1200 })
	if !<-overlapped {
		t.Error("no GetRecords answer arrived while a batch was being loaded: nothing was read ahead")
	}
	checkLoadedInPutOrder(t, w.memoryWarehouse, all)
	w.checkChain(t)
	records, _, _ := c.HeldPeaks()
	if records > cfg.Read.ReadAheadRecords {
		t.Errorf("a reader held %d records, above its bound of %d", records, cfg.Read.ReadAheadRecords)
	}
	if records <= cfg.Batch.MaxRecords {
		t.Errorf("a reader held at most %d records, one batch (%d): the test read nothing ahead", records, cfg.Batch.MaxRecords)
	}
}

// The bytes bound: no GetRecords call is made at or above read-ahead-bytes, so what is held
// never exceeds it by more than one answer.
func TestReadAheadBytesBoundHoldsWithLargeRecords(t *testing.T) {
	stream, name, _ := oneShardStream(t)
	big := strings.Repeat("x", 64<<10)
	var all []putRecord
	for _, r := range records("b", 60, 3) {
		all = append(all, putRecord{key: r.key, data: r.data + big})
	}
	put(t, stream.Client, name, all)
	w := newMemoryWarehouse()
	cfg := testConfig(name)
	cfg.Batch = consumer.BatchConfig{MaxRecords: 10, MaxBytes: 1 << 20, MaxAge: time.Hour}
	cfg.Read = consumer.ReadConfig{GetRecordsLimit: 10_000, ReadAheadRecords: 10_000, ReadAheadBytes: 1 << 20}
	c, err := consumer.New(cfg, stream, passThroughTransformer{}, w, newSoleOwner(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	waitUntil(t, 60*time.Second, "60 rows", func() bool { return len(w.allLoaded()) == 60 })
	_, bytes, answer := c.HeldPeaks()
	if bytes >= cfg.Read.ReadAheadBytes+answer {
		t.Errorf("a reader held %d bytes, above its bound of %d plus one answer (%d)", bytes, cfg.Read.ReadAheadBytes, answer)
	}
}

// A batch that cannot fill is flushed as soon as the shard is caught up, not when it ages
// (an hour here).
func TestCaughtUpBatchIsFlushedWithoutWaitingForItsAge(t *testing.T) {
	stream, name, _ := oneShardStream(t)
	w := newMemoryWarehouse()
	cfg := readAheadConfig(name)
	cfg.Batch.MaxRecords = 500
	cfg.Read.ReadAheadRecords = 500
	startConsumer(t, stream.Client, cfg, w)
	put(t, stream.Client, name, records("c", 10, 3))
	waitUntil(t, 30*time.Second, "10 rows of a batch of 500 that ages in an hour", func() bool { return len(w.allLoaded()) == 10 })
	put(t, stream.Client, name, records("d", 7, 3))
	waitUntil(t, 30*time.Second, "7 more rows", func() bool { return len(w.allLoaded()) == 17 })
}

// signalLog is a slog handler that tells when a message is logged.
type signalLog struct {
	message string
	seen    chan struct{}
	once    sync.Once
}

func (s *signalLog) Enabled(context.Context, slog.Level) bool { return true }
func (s *signalLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == s.message {
		s.once.Do(func() { close(s.seen) })
	}
	return nil
}
func (s *signalLog) WithAttrs([]slog.Attr) slog.Handler { return s }
func (s *signalLog) WithGroup(string) slog.Handler      { return s }

// A lease lost while a batch is loaded and more is read ahead: the batch in flight may
// land, nothing read ahead is committed, and the next owner reads on from the checkpoint.
func TestLeaseLossDropsTheReadAhead(t *testing.T) {
	stream, name, shardID := oneShardStream(t)
	all := records("e", 600, 3)
	put(t, stream.Client, name, all)

	lost := &signalLog{message: "lease lost; stopping the shard without committing", seen: make(chan struct{})}
	w := &loadLog{memoryWarehouse: newMemoryWarehouse()}
	loading := make(chan struct{})
	w.before = func(n int) {
		if n == 1 {
			close(loading)
			<-lost.seen // the first batch lands only after the loss was acted on
		}
	}
	cfg := readAheadConfig(name)
	cfg.Read.ReadAheadRecords = 400
	leases := &scriptedLeases{events: make(chan lease.Event, 8)}
	c, err := consumer.New(cfg, stream, passThroughTransformer{}, w, leases, slog.New(lost), nil)
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)

	leases.events <- lease.Event{Kind: lease.Acquired, ShardID: shardID, Token: 1}
	<-loading
	if held, _, _ := c.HeldPeaks(); held <= cfg.Batch.MaxRecords {
		t.Fatalf("%d records held while the first batch loads: nothing read ahead to drop", held)
	}
	leases.events <- lease.Event{Kind: lease.Lost, ShardID: shardID, Token: 1}
	waitUntil(t, 30*time.Second, "the reader to stop", func() bool { return len(c.Reading()) == 0 })
	if n := w.committedLoads(); n != 1 {
		t.Errorf("%d batches committed after the lease was lost with one in flight, want 1", n)
	}
	checkLoadedInPutOrder(t, w.memoryWarehouse, all[:cfg.Batch.MaxRecords])

	// The shard's next owner (here this consumer under a new token) reads on from the
	// checkpoint: every record once, in order.
	leases.events <- lease.Event{Kind: lease.Acquired, ShardID: shardID, Token: 2}
	waitUntil(t, 60*time.Second, "600 rows", func() bool { return len(w.allLoaded()) == 600 })
	checkLoadedInPutOrder(t, w.memoryWarehouse, all)
	w.checkChain(t)
}

// Stopping while a batch is loaded and more is read ahead: the batch held is committed,
// nothing read ahead of it is, and a restart reads on from the checkpoint.
func TestShutdownDropsTheReadAhead(t *testing.T) {
	stream, name, shardID := oneShardStream(t)
	all := records("f", 600, 3)
	put(t, stream.Client, name, all)

	w := &loadLog{memoryWarehouse: newMemoryWarehouse()}
	loading, stopped := make(chan struct{}), make(chan struct{})
	w.before = func(n int) {
		if n == 1 {
			close(loading)
			<-stopped
		}
	}
	cfg := readAheadConfig(name)
	cfg.Read.ReadAheadRecords = 400
	c, err := consumer.New(cfg, stream, passThroughTransformer{}, w, newSoleOwner(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	<-loading
	if held, _, _ := c.HeldPeaks(); held <= cfg.Batch.MaxRecords {
		t.Fatalf("%d records held while the first batch loads: nothing read ahead to drop", held)
	}
	cancel()
	close(stopped)
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("consumer stopped with %v", err)
	}
	loaded := len(w.loadedInOrder())
	if loaded == 0 || loaded > 2*cfg.Batch.MaxRecords {
		t.Errorf("%d rows committed at shutdown, want the batch in flight and at most the one held (%d)", loaded, 2*cfg.Batch.MaxRecords)
	}
	checkLoadedInPutOrder(t, w.memoryWarehouse, all[:loaded])
	cp, _ := w.GetCheckpoint(context.Background(), &loadv1.GetCheckpointRequest{ShardId: shardID})
	if got := cp.GetCheckpoint().GetSequenceNumber(); got != lastSequence(w, loaded) {
		t.Errorf("checkpoint %s is not the last committed record's", got)
	}

	w.before = nil
	startConsumer(t, stream.Client, cfg, w.memoryWarehouse)
	waitUntil(t, 60*time.Second, "600 rows", func() bool { return len(w.allLoaded()) == 600 })
	checkLoadedInPutOrder(t, w.memoryWarehouse, all)
}

// lastSequence is the sequence number the loads committed last, once n rows were loaded.
func lastSequence(l *loadLog, n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.loads) == 0 || n == 0 {
		return ""
	}
	return l.loads[len(l.loads)-1].GetSequenceNumber()
}

// heldGauges reads the read-ahead gauges of one shard: records and bytes held.
func heldGauges(t *testing.T, reader *sdkmetric.ManualReader, shardID string) (records, bytes int64, seen bool) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "boxscore.consumer.read_ahead_records" && m.Name != "boxscore.consumer.read_ahead_bytes" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Gauge[int64]).DataPoints {
				if shard, _ := dp.Attributes.Value("shard_id"); shard.AsString() != shardID {
					continue
				}
				seen = true
				if m.Name == "boxscore.consumer.read_ahead_records" {
					records = dp.Value
				} else {
					bytes = dp.Value
				}
			}
		}
	}
	return records, bytes, seen
}

// The read-ahead gauges show what a shard reader holds while a slow load makes it wait,
// within its bound, and fall to 0 once the reader stops (what it read ahead is dropped).
func TestReadAheadGaugesShowWhatIsHeld(t *testing.T) {
	stream, name, shardID := oneShardStream(t)
	put(t, stream.Client, name, records("g", 600, 3))
	w := slowWarehouse{memoryWarehouse: newMemoryWarehouse(), delay: 100 * time.Millisecond}
	cfg := readAheadConfig(name)
	reader := sdkmetric.NewManualReader()
	run := runConsumer(t, cfg, stream.Client, passThroughTransformer{}, w, reader)
	var most int64
	waitUntil(t, 30*time.Second, "read-ahead gauges above one batch", func() bool {
		records, bytes, _ := heldGauges(t, reader, shardID)
		if records > int64(cfg.Read.ReadAheadRecords) {
			t.Fatalf("read_ahead_records = %d, above the bound %d", records, cfg.Read.ReadAheadRecords)
		}
		if records > 0 && bytes <= 0 {
			t.Fatalf("read_ahead_records = %d but read_ahead_bytes = %d", records, bytes)
		}
		most = max(most, records)
		return records > int64(cfg.Batch.MaxRecords)
	})
	waitUntil(t, 60*time.Second, "600 rows", func() bool { return len(w.allLoaded()) == 600 })
	run.stop()
	records, bytes, seen := heldGauges(t, reader, shardID)
	if !seen || records != 0 || bytes != 0 {
		t.Errorf("after the reader stopped: read_ahead_records %d, read_ahead_bytes %d (reported: %v), want 0 and 0", records, bytes, seen)
	}
	t.Logf("most records held seen: %d (bound %d)", most, cfg.Read.ReadAheadRecords)
}
