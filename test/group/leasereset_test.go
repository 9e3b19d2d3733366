package group

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// longHistory is how far the lease counters are moved on before the reset, as a lease
// table that has been renewing for a while has them: far above what a new table hands out.
const longHistory = 1000

// TestLeaseStoreResetHeals: two replicas read the shards under leases whose tokens the
// warehouse stores with each checkpoint; then every lease row is deleted (as moving the
// lease store to another database or --lease-schema does), so the counters start again
// at 0, far below the stored tokens. Each replica's claims are refused; it raises its
// lease's token above the warehouse's and claims again. Every shard flows again (its
// checkpoint reaches the end of the stream, committed under a token above the old one),
// and the warehouse holds every accepted event exactly once.
func TestLeaseStoreResetHeals(t *testing.T) {
	e := newGroup(t, 2)
	names := replicaNames(1, 2)
	e.waitBalanced(60*time.Second, names, []int{4, 4})
	f := startFlow(t, e.GatewayURL(), e.players(16), flowPause)
	ctx := context.Background()

	// A long-lived lease table: every counter far above what a new one starts from. The
	// owners' next renewals are refused; they take their leases back at once under tokens
	// above longHistory and claim the shards with them.
	if _, err := e.DB.Exec(ctx, `UPDATE boxscore_lease.shard_lease SET counter = counter + $2 WHERE stream = $1`, e.Stream, longHistory); err != nil {
		t.Fatal(err)
	}
	e.WaitFor(60*time.Second, fmt.Sprintf("every shard committed under a token above %d", longHistory), func() bool {
		return e.everyShard(func(_ string, token int64, seq string) bool { return token > longHistory && seq != "" })
	})
	before := e.storedTokens()

	// The reset: every lease row is gone.
	resetAt := e.Now()
	tag, err := e.DB.Exec(ctx, `DELETE FROM boxscore_lease.shard_lease WHERE stream = $1`, e.Stream)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lease store reset: %d lease rows deleted; stored tokens %v", tag.RowsAffected(), before)

	// Every shard commits again, under a token above the one stored before the reset.
	e.WaitFor(90*time.Second, "every shard committed again after the reset, under a greater token", func() bool {
		cps, err := e.Checkpoints(ctx)
		if err != nil || len(cps) != shardCount {
			return false
		}
		for id, cp := range cps {
			if cp.Token <= before[id] || !cp.Updated.After(resetAt) {
				return false
			}
		}
		return true
	})
	e.waitBalanced(60*time.Second, names, []int{4, 4})

	f.finish()
	e.settle(f, 90*time.Second)
	e.assertExactlyOnce(f)

	// The lease rows were recreated from 0 and then raised above the warehouse's tokens.
	leases, err := e.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raises := 0.0
	for _, name := range names {
		raises += e.Scrape(name).Sum("boxscore_lease_token_raises_total")
	}
	after := e.storedTokens()
	for id, l := range leases {
		if l.Counter < after[id] {
			t.Errorf("lease of %s at counter %d, below the token %d stored in the warehouse", id, l.Counter, after[id])
		}
	}
	if raises < shardCount {
		t.Errorf("%v token raises for %d shards whose lease counters restarted below the stored tokens", raises, shardCount)
	}
	t.Logf("after the reset: %v token raises; stored tokens %v", raises, after)
}

// everyShard reports whether every shard of the stream has a checkpoint for which ok holds.
func (e *env) everyShard(ok func(shardID string, token int64, seq string) bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cps, err := e.Checkpoints(ctx)
	if err != nil || len(cps) != shardCount {
		return false
	}
	for id, cp := range cps {
		if !ok(id, cp.Token, cp.Sequence) {
			return false
		}
	}
	return true
}

// storedTokens are the lease tokens the warehouse stores with each shard's checkpoint.
func (e *env) storedTokens() map[string]int64 {
	e.t.Helper()
	cps, err := e.Checkpoints(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	out := make(map[string]int64, len(cps))
	for id, cp := range cps {
		out[id] = cp.Token
	}
	return out
}
