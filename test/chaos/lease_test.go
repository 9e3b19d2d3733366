package chaos

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/test/stack"
)

// checkpointSample is one shard_checkpoint row as seen at one moment.
type checkpointSample struct {
	shard, seq, consumer string
	token                int64
	updated              time.Time
}

// TestPausedConsumerCommitsNothingAfterLosingItsShards: two consumer replicas share the
// shards with a 3 s lease failover. Replica 1 is frozen (SIGSTOP) for longer than that
// while events flow; replica 2 takes its shards; replica 1 is let go (SIGCONT). Replica 1
// must commit nothing under the leases it lost, and the data must be exactly once.
func TestPausedConsumerCommitsNothingAfterLosingItsShards(t *testing.T) {
	const failover = 3 * time.Second
	kinesalite := kinesalitetest.Start(t)
	streamName := kinesalitetest.UniqueName(t)
	kinesalite.CreateStream(t, streamName, 4)
	dbURL := pgtest.NewDatabase(t)
	lease := consumerLeaseFlags(dbURL)
	s := stack.New(t, stack.Config{KinesisEndpoint: kinesalite.Endpoint, Stream: streamName, DatabaseURL: dbURL,
		Env: map[string][]string{stack.Gateway: gatewayFlags, stack.Consumer: lease}})
	s.StartAll()
	replica2 := s.StartReplica(stack.Consumer, 2)
	first, second := s.Current(stack.Consumer).ConsumerID, s.Current(replica2).ConsumerID
	e := newEnv(t, s, streamName, kinesalite.Client(t), dbURL)
	e.schemaReady()

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
			rows, err := e.db.Query(sampleCtx, `SELECT shard_id, sequence_number, coalesce(consumer_id, ''),
				coalesce(to_jsonb(c)->>'lease_token', '0'), updated_at FROM boxscore.shard_checkpoint c WHERE stream = $1`, streamName)
			if err == nil {
				for rows.Next() {
					var c checkpointSample
					var token string
					if rows.Scan(&c.shard, &c.seq, &c.consumer, &token, &c.updated) == nil {
						c.token, _ = strconv.ParseInt(token, 10, 64)
						mu.Lock()
						samples = append(samples, c)
						mu.Unlock()
					}
				}
				rows.Close()
			}
			time.Sleep(25 * time.Millisecond)
		}
	}()

	rng := rand.New(rand.NewPCG(7, 8))
	w := makeWorkload(rng, 40, 100, 40)
	led := newLedger()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	produced := producing(ctx, led, s.GatewayURL(), w, 2, 150*time.Millisecond)

	// Wait until replica 1 holds and commits some shards, then freeze it.
	e.waitFor(30*time.Second, "replica 1 committing", func() bool {
		return e.count("SELECT count(*) FROM boxscore.shard_checkpoint WHERE stream = $1 AND consumer_id = $2", streamName, first) > 0
	})
	var pausedAt time.Time
	if err := e.db.QueryRow(context.Background(), "SELECT now()").Scan(&pausedAt); err != nil {
		t.Fatal(err)
	}
	s.Pause(stack.Consumer)
	mu.Lock()
	heldTokens := map[string]int64{} // shard -> the token replica 1 committed under last
	for _, c := range samples {
		if c.consumer == first && c.token >= heldTokens[c.shard] {
			heldTokens[c.shard] = c.token
		}
	}
	mu.Unlock()
	time.Sleep(3 * failover)
	var resumedAt time.Time
	if err := e.db.QueryRow(context.Background(), "SELECT now()").Scan(&resumedAt); err != nil {
		t.Fatal(err)
	}
	s.Resume(stack.Consumer)
	produced(t)
	e.settle(90 * time.Second)
	stopSampling()
	<-sampled

	// A Load already on the wire when the process froze may still commit: it was sent under
	// a valid lease. Allow one RPC's worth of time.
	grace := pausedAt.Add(time.Second)
	takenOver := map[string]bool{}
	for _, c := range samples {
		if c.updated.After(grace) && c.consumer == first && c.token <= heldTokens[c.shard] && heldTokens[c.shard] > 0 {
			t.Errorf("replica 1 (%s) committed shard %s at %s (sequence %s) under token %d, %s after it was paused and lost its lease",
				first, c.shard, c.updated.Format(time.RFC3339Nano), c.seq, c.token, c.updated.Sub(pausedAt).Round(time.Millisecond))
		}
		if c.consumer == second && c.updated.After(grace) && c.updated.Before(resumedAt) {
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
	e.assertExactlyOnce(led)
}
