package consumer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"google.golang.org/grpc"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/consumer"
)

// slowWarehouse is the memory warehouse whose Load takes a while, as a real transform and
// load of a 500-record batch does on a busy machine (~100 ms in make bench's drain): the
// reader then holds what it reads ahead, which is what the memory bound is about.
type slowWarehouse struct {
	*memoryWarehouse
	delay time.Duration
}

func (w slowWarehouse) Load(ctx context.Context, req *loadv1.LoadRequest, opts ...grpc.CallOption) (*loadv1.LoadResponse, error) {
	time.Sleep(w.delay)
	return w.memoryWarehouse.Load(ctx, req, opts...)
}

// BenchmarkDrainMemory drains a 4-shard backlog of gateway-sized records (~340 bytes)
// behind a slow warehouse with the default batch settings and the given read-ahead bounds,
// and reports the peak heap (live and not yet collected objects, sampled every 2 ms) and
// the drain rate: what the read-ahead bounds cost in memory and what they give.
func BenchmarkDrainMemory(b *testing.B) {
	const shards, perShard = 4, 12_000
	client, name := gatewaySizedBacklog(b, shards, perShard)

	for _, rc := range []consumer.ReadConfig{
		{ReadAheadRecords: 10_000, ReadAheadBytes: 8 << 20}, // the defaults before
		consumer.DefaultReadConfig,
	} {
		b.Run(fmt.Sprintf("records=%d,bytes=%d", rc.ReadAheadRecords, rc.ReadAheadBytes), func(b *testing.B) {
			var peak uint64
			var drained time.Duration
			for b.Loop() {
				runtime.GC()
				w := slowWarehouse{memoryWarehouse: newMemoryWarehouse(), delay: 100 * time.Millisecond}
				cfg := consumer.Config{
					Stream: name, ConsumerID: "bench", PollInterval: 200 * time.Millisecond, ShardSyncInterval: 10 * time.Second,
					RPCTimeout: 10 * time.Second, Retry: consumer.RetryPolicy{Initial: 100 * time.Millisecond, Max: 10 * time.Second},
					Batch: consumer.BatchConfig{MaxRecords: 500, MaxBytes: 4 << 20, MaxAge: 500 * time.Millisecond},
					Read:  consumer.ReadConfig{GetRecordsLimit: 10_000, ReadAheadRecords: rc.ReadAheadRecords, ReadAheadBytes: rc.ReadAheadBytes},
				}
				c, err := consumer.New(cfg, client, passThroughTransformer{}, w, newSoleOwner(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				var sampling atomic.Bool
				sampling.Store(true)
				sampled := make(chan uint64, 1)
				go func() { sampled <- samplePeakHeap(&sampling) }()
				started := time.Now()
				go func() { done <- c.Run(ctx) }()
				for w.rowsLoaded() < shards*perShard {
					time.Sleep(time.Millisecond)
				}
				drained += time.Since(started)
				sampling.Store(false)
				peak = max(peak, <-sampled)
				cancel()
				if err := <-done; err != nil {
					b.Fatalf("consumer Run: %v", err)
				}
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(b.N*shards*perShard)/drained.Seconds(), "records/s")
		})
	}
}

// samplePeakHeap reads the heap's size (objects, live or not yet swept) every 2 ms while
// on holds, and returns the largest.
func samplePeakHeap(on *atomic.Bool) uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak uint64
	for on.Load() {
		metrics.Read(s)
		peak = max(peak, s[0].Value.Uint64())
		time.Sleep(2 * time.Millisecond)
	}
	return peak
}

// gatewaySizedBacklog starts a kinesalite and fills a stream of the given shards with
// perShard records each of gateway size (~340 bytes, 750 players), for the drain benchmarks.
func gatewaySizedBacklog(b *testing.B, shards int32, perShard int) (*kinesis.Client, string) {
	srv := kinesalitetest.Start(b)
	client := srv.Client(b)
	name := kinesalitetest.UniqueName(b)
	srv.CreateStream(b, name, shards)
	all := records("m", int(shards)*perShard, 750)
	payload := fmt.Sprintf("%0330d", 0)
	for i := range all {
		all[i].data += payload
	}
	put(b, client, name, all)
	return client, name
}
