// Package consumer reads every shard of the stream and moves its records through the
// transformer into the warehouse, committing each shard's checkpoint with the data.
//
// Order and resharding: a shard is read only after its parents (one for a split, two for a
// merge) were read to their end and checkpointed as finished, so records of one partition
// key (one player) are loaded in the order the stream holds them, across reshards. A closed
// shard found at start-up is drained, never skipped.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	"github.com/boxscore-dev/boxscore/pkg/stream"
)

// Config tunes the consumer.
type Config struct {
	Stream            string
	ConsumerID        string
	PollInterval      time.Duration
	ShardSyncInterval time.Duration
	RPCTimeout        time.Duration
	Batch             BatchConfig
	Retry             RetryPolicy
}

// Consumer owns the shard readers of one stream.
type Consumer struct {
	cfg         Config
	stream      stream.API
	transformer transformv1.TransformServiceClient
	loader      loadv1.LoadServiceClient
	log         *slog.Logger
	metrics     *metrics
	synced      atomic.Bool
}

// New builds a consumer.
func New(cfg Config, api stream.API, transformer transformv1.TransformServiceClient, loader loadv1.LoadServiceClient, logger *slog.Logger) (*Consumer, error) {
	if cfg.PollInterval < 200*time.Millisecond {
		return nil, fmt.Errorf("poll interval %s is below 200ms: Kinesis allows 5 GetRecords calls per second per shard", cfg.PollInterval)
	}
	m, err := newMetrics()
	if err != nil {
		return nil, err
	}
	return &Consumer{cfg: cfg, stream: api, transformer: transformer, loader: loader, log: logger, metrics: m}, nil
}

// Ready reports whether the consumer has seen the stream's shards.
func (c *Consumer) Ready(context.Context) error {
	if !c.synced.Load() {
		return errors.New("shards not listed yet")
	}
	return nil
}

type readerDone struct {
	shardID string
	err     error
}

// Run reads until ctx ends, then waits for every shard reader to commit what it holds.
func (c *Consumer) Run(ctx context.Context) error {
	running := map[string]bool{}
	finished := map[string]bool{}
	done := make(chan readerDone)
	sync := time.NewTimer(0)
	defer sync.Stop()

	for {
		select {
		case <-ctx.Done():
			for len(running) > 0 {
				d := <-done
				delete(running, d.shardID)
			}
			c.log.Info("all shard readers stopped")
			return nil
		case d := <-done:
			delete(running, d.shardID)
			c.metrics.readers.Add(ctx, -1)
			switch {
			case d.err == nil:
				finished[d.shardID] = true
			case ctx.Err() == nil:
				c.log.Error("shard reader failed; restarting it", "shard_id", d.shardID, "error", d.err)
			}
			// A finished parent may free its children; a failed reader restarts soon.
			resetTimer(sync, c.cfg.Retry.Initial)
		case <-sync.C:
			shards, err := c.listShards(ctx)
			if err != nil {
				if ctx.Err() == nil {
					c.log.Error("list shards", "error", err)
				}
				resetTimer(sync, c.cfg.ShardSyncInterval)
				continue
			}
			c.synced.Store(true)
			for _, shard := range readyShards(shards, running, finished) {
				id := aws.ToString(shard.ShardId)
				running[id] = true
				c.metrics.readers.Add(ctx, 1)
				r := &shardReader{c: c, shard: shard, log: c.log.With("shard_id", id)}
				go func() { done <- readerDone{shardID: id, err: r.run(ctx)} }()
			}
			resetTimer(sync, c.cfg.ShardSyncInterval)
		}
	}
}

// readyShards returns the shards to start now: not running, not finished, and with every
// parent that still exists finished. A parent missing from the listing has aged out of the
// stream's retention, so there is nothing left to wait for.
func readyShards(shards []types.Shard, running, finished map[string]bool) []types.Shard {
	listed := make(map[string]bool, len(shards))
	for _, s := range shards {
		listed[aws.ToString(s.ShardId)] = true
	}
	var ready []types.Shard
	for _, s := range shards {
		id := aws.ToString(s.ShardId)
		if running[id] || finished[id] {
			continue
		}
		blocked := false
		for _, parent := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
			if p := aws.ToString(parent); p != "" && listed[p] && !finished[p] {
				blocked = true
			}
		}
		if !blocked {
			ready = append(ready, s)
		}
	}
	sort.Slice(ready, func(i, j int) bool { return aws.ToString(ready[i].ShardId) < aws.ToString(ready[j].ShardId) })
	return ready
}

// listShards lists every shard of the stream, open and closed, page by page.
func (c *Consumer) listShards(ctx context.Context) ([]types.Shard, error) {
	var shards []types.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(c.cfg.Stream)}
	for {
		out, err := retry(ctx, c.cfg.Retry, func() (*kinesis.ListShardsOutput, error) {
			return c.stream.ListShards(ctx, in)
		}, func(err error, wait time.Duration) {
			c.metrics.retried(ctx, "list shards")
			c.log.Warn("transient failure, retrying", "operation", "list shards", "error", err, "wait", wait)
		})
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", c.cfg.Stream, err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			return shards, nil
		}
		// A paged call names the token only: the stream name must be left out.
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

func resetTimer(t *time.Timer, d time.Duration) {
	t.Stop()
	select {
	case <-t.C:
	default:
	}
	t.Reset(d)
}
