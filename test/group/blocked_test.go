package group

import (
	"context"
	"testing"
	"time"
)

// blockFor is how long the warehouse stays blocked: twenty lease failover times.
const blockFor = 60 * time.Second

// TestBlockedWarehouseMovesNoLease: with three replicas balanced and events flowing, the
// fact table is locked for a minute (processing stalls, the lease table stays reachable).
// No lease changes owner meanwhile and every lease keeps being renewed; once the lock is
// released the backlog commits exactly once.
func TestBlockedWarehouseMovesNoLease(t *testing.T) {
	e, f, _, _ := threeReplicasFlowing(t, 10)
	ctx := context.Background()

	// An open transaction holding the fact table: every load waits on it.
	conn, err := e.DB.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE boxscore.fact_batting_game IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	var blockedAt time.Time
	if err := tx.QueryRow(ctx, "SELECT now()").Scan(&blockedAt); err != nil {
		t.Fatal(err)
	}
	before, err := e.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}

	samples, renewals, moves := 0, int64(0), 0
	last := before
	for end := time.Now().Add(blockFor); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		now, err := e.Leases(sctx)
		cancel()
		if err != nil {
			t.Fatalf("the lease table is unreachable while the warehouse is blocked: %v", err)
		}
		samples++
		for id, l := range now {
			prev := last[id]
			if l.Owner != prev.Owner {
				if moves++; moves <= 10 {
					t.Errorf("lease of %s moved from %q to %q (counter %d -> %d) %s into the block",
						id, prev.Owner, l.Owner, prev.Counter, l.Counter, time.Since(blockedAt).Round(time.Millisecond))
				}
			}
			if l.Counter < prev.Counter {
				t.Errorf("lease of %s: counter went back from %d to %d", id, prev.Counter, l.Counter)
			}
			renewals += l.Counter - prev.Counter
		}
		last = now
	}
	// Every lease was renewed all along, not only kept.
	for id, l := range last {
		if l.Counter-before[id].Counter < int64(blockFor/failoverTime) {
			t.Errorf("lease of %s renewed %d times in %s (every %s expected)", id, l.Counter-before[id].Counter, blockFor, failoverTime/3)
		}
	}
	// The warehouse was really blocked: nothing committed since the lock.
	var committed int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM boxscore.shard_checkpoint WHERE updated_at > $1 AND NOT shard_end", blockedAt).Scan(&committed); err != nil {
		t.Fatal(err)
	}
	if committed > 0 {
		t.Errorf("%d checkpoints moved while the fact table was locked", committed)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("warehouse blocked %s: %d lease table samples, %d renewals seen, %d lease moves", blockFor, samples, renewals, moves)

	released := time.Now()
	f.finish()
	e.settle(f, 120*time.Second)
	t.Logf("backlog committed %s after the lock was released", time.Since(released).Round(time.Millisecond))
	e.assertExactlyOnce(f)
}
