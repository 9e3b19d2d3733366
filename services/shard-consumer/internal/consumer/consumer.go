// Package consumer reads every shard of the stream and moves its records through the
// transformer into the warehouse, committing each shard's checkpoint with the data.
//
// Ownership: a shard is read only while this consumer holds its lease (see Leases); the
// lease's fencing token is claimed in the warehouse before the first read and carried by
// every commit, so a consumer that lost a lease cannot commit.
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
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	transformv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/transform/v1"
	"github.com/boxscore-dev/boxscore/pkg/limits"
	"github.com/boxscore-dev/boxscore/pkg/stream"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/lease"
)

// Config tunes the consumer.
type Config struct {
	Stream            string
	ConsumerID        string
	PollInterval      time.Duration
	ShardSyncInterval time.Duration
	RPCTimeout        time.Duration
	Batch             BatchConfig
	// Read sizes GetRecords calls and bounds what a shard holds; zero fields take the flag
	// defaults.
	Read  ReadConfig
	Retry RetryPolicy
	// StallAfter is how long a shard may fail without progress (transient retries of one
	// operation, or reader restarts from the same checkpoint) before it is reported
	// stalled: metric, error log, /leases and readiness. Zero never reports.
	StallAfter time.Duration
}

// Leases is the consumer group: it hands this consumer the shards it may read
// (*lease.Manager in production).
type Leases interface {
	// Run keeps the leases (renewals, takes, balancing) until ctx ends, then releases the
	// ones still held.
	Run(ctx context.Context) error
	// SetShards tells which shards exist and still need reading.
	SetShards(ids []string)
	// Events delivers acquisitions (with the fencing token) and losses.
	Events() <-chan lease.Event
	// Release gives a lease back (a finished shard).
	Release(ctx context.Context, shardID string) error
}

// Consumer owns the shard readers of one stream.
type Consumer struct {
	cfg         Config
	stream      stream.API
	transformer transformv1.TransformServiceClient
	loader      loadv1.LoadServiceClient
	leases      Leases
	log         *slog.Logger
	metrics     *metrics
	tracer      trace.Tracer
	synced      atomic.Bool
	stalls      *stalls
	streamID    atomic.Value // string: the stream's identity, learnt at each shard sync
	held        heldPeaks

	mu       sync.Mutex
	assigned map[string]int64 // shards being read -> token, for the admin endpoint
}

// New builds a consumer. A nil meter records nothing.
func New(cfg Config, api stream.API, transformer transformv1.TransformServiceClient, loader loadv1.LoadServiceClient, leases Leases, logger *slog.Logger, meter metric.Meter) (*Consumer, error) {
	if minPoll := time.Second / limits.KinesisShardGetRecordsPerSecond; cfg.PollInterval < minPoll {
		return nil, fmt.Errorf("poll interval %s is below %s: Kinesis answers %d GetRecords calls per second per shard", cfg.PollInterval, minPoll, limits.KinesisShardGetRecordsPerSecond)
	}
	cfg.Read = cfg.Read.withDefaults(cfg.Batch)
	if err := cfg.Read.Validate(cfg.Batch); err != nil {
		return nil, err
	}
	m, err := newMetrics(meter)
	if err != nil {
		return nil, err
	}
	return &Consumer{cfg: cfg, stream: api, transformer: transformer, loader: loader, leases: leases,
		log: logger, metrics: m, stalls: newStalls(cfg.StallAfter, m), tracer: otel.Tracer("github.com/boxscore-dev/boxscore/services/shard-consumer"), assigned: map[string]int64{}}, nil
}

// Ready reports whether the consumer has seen the stream's shards and progresses every
// shard it reads: a replica holding a stalled shard is not ready.
func (c *Consumer) Ready(context.Context) error {
	if !c.synced.Load() {
		return errors.New("shards not listed yet")
	}
	return c.stalledError()
}

// identity is the stream's identity as last learnt ("" before the first sync, or when the
// endpoint tells none).
func (c *Consumer) identity() string {
	id, _ := c.streamID.Load().(string)
	return id
}

// Reading returns the shards this consumer is reading, with their fencing tokens.
func (c *Consumer) Reading() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.assigned))
	for k, v := range c.assigned {
		out[k] = v
	}
	return out
}

type readerDone struct {
	shardID string
	token   int64
	err     error
}

type runningReader struct {
	cancel context.CancelCauseFunc
	token  int64
}

// coordinator is the state of one Run: which shards exist, which leases are held, which
// readers run and which shards are finished.
type coordinator struct {
	c        *Consumer
	shards   map[string]types.Shard
	held     map[string]int64
	running  map[string]runningReader
	finished map[string]bool
	done     chan readerDone
	// resync: a reader failed; list the shards and learn the stream's identity again
	// before restarting it (the stream may have been deleted and created again).
	resync bool
}

// Run reads the shards whose leases this consumer holds until ctx ends, then waits for
// every reader to commit what it holds, and only then gives the leases back.
func (c *Consumer) Run(ctx context.Context) error {
	leaseCtx, stopLeases := context.WithCancel(context.WithoutCancel(ctx))
	leasesDone := make(chan error, 1)
	go func() { leasesDone <- c.leases.Run(leaseCtx) }()
	defer func() {
		stopLeases()
		if err := <-leasesDone; err != nil {
			c.log.Error("lease manager", "error", err)
		}
	}()

	co := &coordinator{c: c, shards: map[string]types.Shard{}, held: map[string]int64{},
		running: map[string]runningReader{}, finished: map[string]bool{}, done: make(chan readerDone)}
	syncTimer := time.NewTimer(0)
	defer syncTimer.Stop()
	retryStart := time.NewTimer(time.Hour)
	defer retryStart.Stop()

	for {
		select {
		case <-ctx.Done():
			for len(co.running) > 0 {
				d := <-co.done
				co.stopped(d.shardID)
			}
			c.log.Info("all shard readers stopped")
			return nil
		case err := <-leasesDone:
			return fmt.Errorf("lease manager stopped: %w", err)
		case ev := <-c.leases.Events():
			if ev.Kind == lease.Lost {
				// Events name their token: a loss of an older lease must not undo a newer
				// acquisition of the same shard (a paused replica that resumes loses its
				// old leases and may take one back under a new token at once).
				if co.held[ev.ShardID] == ev.Token {
					delete(co.held, ev.ShardID)
				}
				if r, ok := co.running[ev.ShardID]; ok && r.token == ev.Token {
					// Stopped first, logged after: once the line is out, the reader commits
					// nothing it has not handed to the loader already.
					r.cancel(ErrLeaseLost)
					c.log.Warn("lease lost; stopping the shard without committing", "shard_id", ev.ShardID, "lease_token", ev.Token)
				}
				continue
			}
			c.log.Info("lease acquired", "shard_id", ev.ShardID, "token", ev.Token)
			co.held[ev.ShardID] = ev.Token
			co.startReady(ctx)
		case d := <-co.done:
			co.stopped(d.shardID)
			switch {
			case d.err == nil:
				co.finished[d.shardID] = true
				delete(co.held, d.shardID)
				co.publishShards()
				if err := c.leases.Release(ctx, d.shardID); err != nil {
					c.log.Warn("release finished shard", "shard_id", d.shardID, "error", err)
				}
				// A finished parent may free its children.
				co.startReady(ctx)
			case errors.Is(d.err, ErrLeaseLost):
				if co.held[d.shardID] == d.token {
					// Stopped by the warehouse, not by a Lost event: the lease is still
					// held (and renewed); give it back rather than hold it unread.
					delete(co.held, d.shardID)
					co.giveUp(ctx, d.shardID, d.token, d.err)
				}
				// The shard may be held again under a newer token: read it under that one.
				co.startReady(ctx)
			case errors.Is(d.err, errStreamRecreated) && ctx.Err() == nil:
				// Stopped by sync: read it again under the new identity.
				co.startReady(ctx)
			case ctx.Err() == nil:
				c.log.Error("shard reader failed; restarting it", "shard_id", d.shardID, "error", d.err)
				co.resync = true
				resetTimer(retryStart, c.cfg.Retry.Max)
			}
		case <-retryStart.C:
			if co.resync {
				co.resync = false
				if err := co.sync(ctx); err != nil && ctx.Err() == nil {
					c.log.Error("list shards", "error", err)
				}
			}
			co.startReady(ctx)
		case <-syncTimer.C:
			if err := co.sync(ctx); err != nil && ctx.Err() == nil {
				c.log.Error("list shards", "error", err)
			}
			co.startReady(ctx)
			resetTimer(syncTimer, c.cfg.ShardSyncInterval)
		}
	}
}

func (co *coordinator) sync(ctx context.Context) error {
	identity, err := co.c.streamIdentity(ctx)
	if err != nil {
		return err
	}
	if old := co.c.identity(); old != identity {
		co.c.streamID.Store(identity)
		if old != "" {
			co.recreated(old, identity)
		}
	}
	shards, err := co.c.listShards(ctx)
	if err != nil {
		return err
	}
	co.shards = make(map[string]types.Shard, len(shards))
	for _, s := range shards {
		co.shards[aws.ToString(s.ShardId)] = s
	}
	co.publishShards()
	co.c.synced.Store(true)
	return nil
}

// recreated handles a stream deleted and created again under the same name: shards
// finished in the old stream are not finished in the new one, and every reader stops
// (committing what it read of the old stream) to claim again under the new identity, so
// the loader archives the old checkpoints and the shards start over.
func (co *coordinator) recreated(old, identity string) {
	co.c.log.Error("stream recreated under the same name: every shard starts over from its oldest record; the old checkpoints are archived in stream_gap",
		"stream", co.c.cfg.Stream, "old_stream_identity", old, "stream_identity", identity)
	co.finished = map[string]bool{}
	for id, r := range co.running {
		co.c.log.Warn("stopping the shard's reader to claim it under the new stream identity", "shard_id", id)
		r.cancel(errStreamRecreated)
	}
}

// publishShards hands the lease manager the shards that still need reading.
func (co *coordinator) publishShards() {
	ids := make([]string, 0, len(co.shards))
	for id := range co.shards {
		if !co.finished[id] {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	co.c.leases.SetShards(ids)
}

func (co *coordinator) stopped(shardID string) {
	if r, ok := co.running[shardID]; ok {
		r.cancel(nil)
		delete(co.running, shardID)
		co.c.metrics.readers.Add(context.Background(), -1)
		// The shard's lag is its new owner's to report: a last value left here would keep
		// a lag alert firing on this replica for a shard it no longer reads.
		co.c.metrics.lag(context.Background(), shardID, 0)
		co.c.mu.Lock()
		delete(co.c.assigned, shardID)
		co.c.mu.Unlock()
	}
}

// startReady starts a reader for every held shard that is known, not running, not
// finished, and whose parents are finished.
func (co *coordinator) startReady(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	// A shard whose lease went while its failed reader waited to restart is no longer this
	// replica's to report stalled.
	co.c.stalls.keepOnly(func(id string) bool { _, held := co.held[id]; return held })
	ids := make([]string, 0, len(co.held))
	for id := range co.held {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if _, running := co.running[id]; running {
			continue
		}
		if co.finished[id] {
			// A lease of a finished shard: taken while this consumer learnt (from a child's
			// parent check) that another one had finished it. Nothing is left to read; held,
			// it would be renewed forever and counted in this consumer's share.
			delete(co.held, id)
			if err := co.c.leases.Release(ctx, id); err != nil {
				co.c.log.Warn("release finished shard", "shard_id", id, "error", err)
			}
			continue
		}
		shard, known := co.shards[id]
		if !known {
			continue
		}
		if !co.parentsFinished(ctx, shard) {
			continue
		}
		token := co.held[id]
		readerCtx, cancel := context.WithCancelCause(ctx)
		co.running[id] = runningReader{cancel: cancel, token: token}
		co.c.metrics.readers.Add(ctx, 1)
		co.c.mu.Lock()
		co.c.assigned[id] = token
		co.c.mu.Unlock()
		r := &shardReader{c: co.c, shard: shard, token: token, log: co.c.log.With("shard_id", id, "lease_token", token)}
		go func() {
			err := r.run(readerCtx)
			co.c.readerEnded(id, err, readerCtx.Err() != nil)
			co.done <- readerDone{shardID: id, token: token, err: err}
		}()
	}
}

// parentsFinished reports whether every parent of the shard that still exists was read to
// its end and checkpointed as finished — by this consumer or by any other. A parent
// missing from the listing has aged out of the stream's retention.
func (co *coordinator) parentsFinished(ctx context.Context, shard types.Shard) bool {
	for _, parent := range []*string{shard.ParentShardId, shard.AdjacentParentShardId} {
		p := aws.ToString(parent)
		if p == "" || co.finished[p] {
			continue
		}
		if _, listed := co.shards[p]; !listed {
			continue
		}
		resp, err := co.c.loader.GetCheckpoint(ctx, &loadv1.GetCheckpointRequest{Stream: co.c.cfg.Stream, ShardId: p})
		if err != nil || !resp.GetCheckpoint().GetShardEnd() {
			return false
		}
		// A parent finished in an earlier stream of the same name is not finished in this
		// one: it is read (its claim resets it) before its children.
		if id, stored := co.c.identity(), resp.GetCheckpoint().GetStreamIdentity(); id != "" && stored != "" && stored != id {
			return false
		}
		co.finished[p] = true
		co.publishShards() // no longer a lease to take
	}
	return true
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

// readerEnded keeps the shard's stall state across reader restarts: a reader that failed
// (and will be restarted from the same checkpoint) counts as a failure without progress; a
// shard finished, lost or stopped is no longer this replica's to report.
func (c *Consumer) readerEnded(shardID string, err error, stopped bool) {
	if err == nil || stopped || errors.Is(err, ErrLeaseLost) {
		c.stalls.forget(shardID)
		return
	}
	if st, now := c.stalls.failed(shardID, "read shard", StallReaderRestarts, err, time.Now()); now {
		c.log.Error("shard stalled: its reader keeps failing at the same checkpoint", "shard_id", shardID,
			"reason", st.Reason, "since", st.Since, "error", err)
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
