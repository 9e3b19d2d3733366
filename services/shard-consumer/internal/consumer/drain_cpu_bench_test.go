package consumer_test

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/consumer"
)

// BenchmarkDrainCPU drains a 4-shard backlog of gateway-sized records (~340 bytes) with
// the default settings, the transformer and the loader served over loopback gRPC as in
// production (their work, in this process, is the same whatever the consumer does), and
// reports the process's CPU per record (user + system) and the drain rate: what the
// consumer's own work per record costs.
func BenchmarkDrainCPU(b *testing.B) {
	const shards, perShard = 4, 12_000
	client, name := gatewaySizedBacklog(b, shards, perShard)

	var drained, cpu time.Duration
	b.ReportAllocs()
	for range b.N {
		b.StopTimer()
		runtime.GC()
		w := newMemoryWarehouse()
		tr, l := overGRPCBench(b, passThroughTransformer{}, w)
		cfg := consumer.Config{
			Stream: name, ConsumerID: "bench", PollInterval: 200 * time.Millisecond, ShardSyncInterval: 10 * time.Second,
			RPCTimeout: 10 * time.Second, Retry: consumer.RetryPolicy{Initial: 100 * time.Millisecond, Max: 10 * time.Second},
			Batch: consumer.BatchConfig{MaxRecords: 500, MaxBytes: 4 << 20, MaxAge: 500 * time.Millisecond},
		}
		c, err := consumer.New(cfg, client, tr, l, newSoleOwner(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		cpuStarted, started := processCPU(b), time.Now()
		go func() { done <- c.Run(ctx) }()
		for w.rowsLoaded() < shards*perShard {
			time.Sleep(time.Millisecond)
		}
		drained += time.Since(started)
		cpu += processCPU(b) - cpuStarted
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatalf("consumer Run: %v", err)
		}
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N*shards*perShard), "cpu-µs/record")
	b.ReportMetric(float64(b.N*shards*perShard)/drained.Seconds(), "records/s")
}
