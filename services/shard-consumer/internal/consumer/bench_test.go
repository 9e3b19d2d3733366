package consumer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/consumer"
)

// BenchmarkReadBacklog is the reader loop against kinesalite with the default read and
// batch settings: a one-shard backlog of gateway-sized records drained into the in-memory
// warehouse (the transformer and loader in process, so the reader is what is measured).
func BenchmarkReadBacklog(b *testing.B) {
	const backlog = 5000
	srv := kinesalitetest.Start(b)
	client := srv.Client(b)
	payload := fmt.Sprintf("%0316d", 0)
	var drained time.Duration
	for b.Loop() {
		b.StopTimer()
		name := kinesalitetest.UniqueName(b)
		srv.CreateStream(b, name, 1)
		all := records("r", backlog, 750)
		for i := range all {
			all[i].data += payload
		}
		put(b, client, name, all)
		w := newMemoryWarehouse()
		cfg := consumer.Config{
			Stream: name, ConsumerID: "bench", PollInterval: 200 * time.Millisecond, ShardSyncInterval: 10 * time.Second,
			RPCTimeout: 10 * time.Second, Retry: consumer.RetryPolicy{Initial: 100 * time.Millisecond, Max: 10 * time.Second},
			Batch: consumer.BatchConfig{MaxRecords: 500, MaxBytes: 4 << 20, MaxAge: 500 * time.Millisecond},
		}
		c, err := consumer.New(cfg, client, passThroughTransformer{}, w, newSoleOwner(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		started := time.Now()
		go func() { done <- c.Run(ctx) }()
		for w.rowsLoaded() < backlog {
			time.Sleep(time.Millisecond)
		}
		drained += time.Since(started)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatalf("consumer Run: %v", err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*backlog)/drained.Seconds(), "records/s")
}

func (w *memoryWarehouse) rowsLoaded() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, ids := range w.loaded {
		n += len(ids)
	}
	return n
}
