package chaos

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/test/stack"
)

// checkpointSample is one shard's checkpoint as seen at one moment.
type checkpointSample struct {
	stack.Checkpoint
	shard string
}

// TestPausedConsumerCommitsNothingAfterLosingItsShards: two consumer replicas share the
// shards with a 3 s lease failover. Replica 1 is frozen (SIGSTOP) for longer than that
// while events flow; replica 2 takes its shards; replica 1 is let go (SIGCONT). Replica 1
// must commit nothing under the leases it lost, and the data must be exactly once.
func TestPausedConsumerCommitsNothingAfterLosingItsShards(t *testing.T) {
	const failover = 3 * time.Second
	p := stack.NewPipeline(t, stack.PipelineConfig{Shards: 4,
		Config: stack.Config{Env: map[string][]string{stack.Gateway: gatewayFlags, stack.Consumer: consumerLeaseFlags}}})
	p.StartAll()
	replica2 := p.StartReplica(stack.Consumer, 2)
	first, second := p.Current(stack.Consumer).ConsumerID, p.Current(replica2).ConsumerID
	p.WaitSchema()

	// Sample the checkpoints all along: who committed what, under which token.
	var (
		mu      sync.Mutex
		samples []checkpointSample
	)
	sampleCtx, stopSampling := context.WithCancel(context.Background())
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for sampleCtx.Err() == nil {
			if cps, err := p.Checkpoints(sampleCtx); err == nil {
				mu.Lock()
				for shard, c := range cps {
					samples = append(samples, checkpointSample{Checkpoint: c, shard: shard})
				}
				mu.Unlock()
			}
			time.Sleep(25 * time.Millisecond)
		}
	}()

	rng := rand.New(rand.NewPCG(7, 8))
	w := makeWorkload(rng, 40, 100, 40)
	led, produced := producing(t, p, w, 2, 150*time.Millisecond, 3*time.Minute)

	// Wait until the sampler saw replica 1 commit some shards, then freeze it.
	p.WaitFor(30*time.Second, "replica 1 committing", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range samples {
			if c.Consumer == first {
				return true
			}
		}
		return false
	})
	pausedAt := p.Now()
	p.Pause(stack.Consumer)
	mu.Lock()
	heldTokens := map[string]int64{} // shard -> the token replica 1 committed under last
	for _, c := range samples {
		if c.Consumer == first && c.Token >= heldTokens[c.shard] {
			heldTokens[c.shard] = c.Token
		}
	}
	mu.Unlock()
	time.Sleep(3 * failover)
	resumedAt := p.Now()
	p.Resume(stack.Consumer)
	produced(t)
	p.Settle(90 * time.Second)
	stopSampling()
	<-sampled

	// A Load already on the wire when the process froze may still commit: it was sent under
	// a valid lease. Allow one RPC's worth of time.
	grace := pausedAt.Add(time.Second)
	takenOver := map[string]bool{}
	for _, c := range samples {
		if c.Updated.After(grace) && c.Consumer == first && c.Token <= heldTokens[c.shard] && heldTokens[c.shard] > 0 {
			t.Errorf("replica 1 (%s) committed shard %s at %s (sequence %s) under token %d, %s after it was paused and lost its lease",
				first, c.shard, c.Updated.Format(time.RFC3339Nano), c.Sequence, c.Token, c.Updated.Sub(pausedAt).Round(time.Millisecond))
		}
		if c.Consumer == second && c.Updated.After(grace) && c.Updated.Before(resumedAt) {
			if _, held := heldTokens[c.shard]; held {
				takenOver[c.shard] = true
			}
		}
	}
	if len(heldTokens) == 0 {
		t.Fatal("replica 1 held no shard when it was paused")
	}
	for shard := range heldTokens {
		if !takenOver[shard] {
			t.Errorf("replica 2 (%s) did not commit shard %s, held by the paused replica 1, while it was paused", second, shard)
		}
	}
	t.Logf("replica 1 held %d shards when paused; replica 2 took over %d", len(heldTokens), len(takenOver))
	p.AssertExactlyOnce(led)
}
