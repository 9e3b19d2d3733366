package consumer

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Reasons a shard is stalled (the reason attribute of boxscore.consumer.shard_stalled).
const (
	// StallTransientRetries: one operation (Transform, Load, a Kinesis call) has failed
	// transiently, retried in place, for longer than --stall-after.
	StallTransientRetries = "transient_retries"
	// StallReaderRestarts: the shard's reader has failed and been restarted from the same
	// checkpoint for longer than --stall-after (e.g. a dead letter the loader refuses too).
	StallReaderRestarts = "reader_restarts"
)

// Stall is the stalled state of one shard this replica reads.
type Stall struct {
	Since  time.Time // when the shard last stopped making progress (first failure)
	Reason string    // StallTransientRetries or StallReaderRestarts
	Op     string    // the operation that keeps failing
	Err    string    // its last error
}

// stalls follows, per shard, how long it has failed to make progress. A shard is stalled
// once its failures have lasted stallAfter without a commit (or, for a failing Kinesis
// read, a successful read) in between; it clears when it progresses again. A nil *stalls
// records nothing.
type stalls struct {
	after   time.Duration
	metrics *metrics

	mu     sync.Mutex
	shards map[string]*stallState
}

type stallState struct {
	since   time.Time
	op      string
	reason  string
	err     string
	stalled bool
}

// readOps are the Kinesis operations a successful read proves healthy again.
var readOps = map[string]bool{"get records": true, "get shard iterator": true, "claim shard": true}

func newStalls(after time.Duration, m *metrics) *stalls {
	return &stalls{after: after, metrics: m, shards: map[string]*stallState{}}
}

// failed records a failure of op on the shard. It reports the Stall when this failure is
// the one that makes the shard stalled (so the caller logs it once).
func (s *stalls) failed(shardID, op, reason string, err error, now time.Time) (Stall, bool) {
	if s == nil {
		return Stall{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.shards[shardID]
	if st == nil {
		st = &stallState{since: now}
		s.shards[shardID] = st
	}
	st.op, st.err = op, fmt.Sprint(err)
	if st.stalled || s.after <= 0 || now.Sub(st.since) < s.after {
		if !st.stalled {
			st.reason = reason
		}
		return Stall{}, false
	}
	st.stalled, st.reason = true, reason
	s.metrics.stalled(context.Background(), shardID, reason, true)
	return Stall{Since: st.since, Reason: st.reason, Op: st.op, Err: st.err}, true
}

// committed clears the shard: its checkpoint moved.
func (s *stalls) committed(shardID string) { s.clear(shardID, nil) }

// read clears the shard if what failed was reading it: reading works again.
func (s *stalls) read(shardID string) {
	s.clear(shardID, func(st *stallState) bool { return readOps[st.op] })
}

// forget clears the shard: this replica no longer reads it.
func (s *stalls) forget(shardID string) { s.clear(shardID, nil) }

func (s *stalls) clear(shardID string, only func(*stallState) bool) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.shards[shardID]
	if st == nil || (only != nil && !only(st)) {
		return
	}
	delete(s.shards, shardID)
	if st.stalled {
		s.metrics.stalled(context.Background(), shardID, st.reason, false)
	}
}

// keepOnly forgets the shards held() says this replica no longer holds (a lease lost while
// the shard's reader was waiting to restart).
func (s *stalls) keepOnly(held func(shardID string) bool) {
	if s == nil {
		return
	}
	s.mu.Lock()
	var gone []string
	for id := range s.shards {
		if !held(id) {
			gone = append(gone, id)
		}
	}
	s.mu.Unlock()
	for _, id := range gone {
		s.forget(id)
	}
}

// snapshot returns the stalled shards.
func (s *stalls) snapshot() map[string]Stall {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]Stall{}
	for id, st := range s.shards {
		if st.stalled {
			out[id] = Stall{Since: st.since, Reason: st.reason, Op: st.op, Err: st.err}
		}
	}
	return out
}

// Stalled returns the shards this replica reads that are stalled, by shard id.
func (c *Consumer) Stalled() map[string]Stall { return c.stalls.snapshot() }

// stalledError describes the stalled shards for readiness, or returns nil.
func (c *Consumer) stalledError() error {
	stalled := c.stalls.snapshot()
	if len(stalled) == 0 {
		return nil
	}
	ids := make([]string, 0, len(stalled))
	for id, st := range stalled {
		ids = append(ids, fmt.Sprintf("%s (%s since %s: %s)", id, st.Reason, st.Since.UTC().Format(time.RFC3339), st.Op))
	}
	sort.Strings(ids)
	return fmt.Errorf("stalled shards: %s", strings.Join(ids, ", "))
}
