package warehouse_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/services/loader/internal/warehouse"
)

// assertFenced checks that err is a fencing refusal carrying the stored lease.
func assertFenced(t *testing.T, err error, wantSeq string, wantToken int64, wantOwner string) {
	t.Helper()
	if !errors.Is(err, warehouse.ErrFenced) || errors.Is(err, warehouse.ErrCheckpointMismatch) {
		t.Fatalf("error = %v, want a fencing error", err)
	}
	var fenced *warehouse.FencedError
	if !errors.As(err, &fenced) {
		t.Fatalf("error %v is not a *FencedError", err)
	}
	stored := fenced.Stored
	if stored.GetSequenceNumber() != wantSeq || stored.GetLeaseToken() != wantToken || stored.GetOwner() != wantOwner ||
		stored.GetStream() != testStream {
		t.Errorf("stored checkpoint in error = %v, want %q under token %d owned by %q", stored, wantSeq, wantToken, wantOwner)
	}
	if warehouse.IsTransient(err) || warehouse.IsDataError(err) {
		t.Errorf("fencing error %v classified as transient or data error", err)
	}
}

// fencedShardRequest is a batch of shard "shardId-000000000005" under token.
func fencedShardRequest(expected, seq string, token int64, rows ...*warehousev1.BattingGameRow) *loadv1.LoadRequest {
	req := request(expected, seq, rows...)
	req.ShardId, req.LeaseToken = "shardId-000000000005", token
	for _, row := range rows {
		row.Position.ShardId = req.ShardId
	}
	return req
}

func TestLeaseFencing(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		const shard = "shardId-000000000005"

		// A shard without a row: the claim creates it, with nothing committed.
		cp := mustClaim(t, e.store, shard, 5, "consumer-a")
		if cp.GetSequenceNumber() != "" || cp.GetShardEnd() || cp.GetLeaseToken() != 5 || cp.GetOwner() != "consumer-a" ||
			cp.GetShardId() != shard || cp.GetUpdatedAt() != nil {
			t.Fatalf("first claim = %v, want an empty checkpoint under token 5 owned by consumer-a", cp)
		}
		// The first load of a claimed shard expects "" and commits.
		resp := mustLoad(t, e.store, fencedShardRequest("", "100", 5, newRow(1, "g1", 1, "evt-1", "90")))
		assertCounts(t, resp, counts{inserted: 1})
		if got := resp.GetCheckpoint(); got.GetSequenceNumber() != "100" || got.GetLeaseToken() != 5 || got.GetOwner() != "consumer-a" {
			t.Errorf("checkpoint after load = %v, want 100 under token 5 owned by consumer-a", got)
		}

		// Another consumer takes the lease over.
		cp = mustClaim(t, e.store, shard, 6, "consumer-b")
		if cp.GetSequenceNumber() != "100" || cp.GetLeaseToken() != 6 || cp.GetOwner() != "consumer-b" || cp.GetUpdatedAt() == nil {
			t.Errorf("takeover claim = %v, want 100 under token 6 owned by consumer-b, with updated_at", cp)
		}
		before, err := e.store.GetCheckpoint(t.Context(), testStream, shard)
		if err != nil {
			t.Fatalf("GetCheckpoint: %v", err)
		}

		// The former owner, back from a pause, is fenced off: nothing of its batch is written.
		stale := fencedShardRequest("100", "200", 5, newRow(2, "g1", 1, "evt-2", "150"))
		stale.Rejections = []*warehousev1.Rejection{newRejection("160", "validate")}
		stale.Rejections[0].Position.ShardId = shard
		_, err = e.store.Load(t.Context(), stale)
		assertFenced(t, err, "100", 6, "consumer-b")
		// A token never claimed, even a greater one, is refused as well.
		_, err = e.store.Load(t.Context(), fencedShardRequest("100", "200", 7))
		assertFenced(t, err, "100", 6, "consumer-b")
		// An older claim is refused, and so is the current token from another owner.
		_, err = e.store.ClaimShard(t.Context(), claimRequest(shard, 4, "consumer-a"))
		assertFenced(t, err, "100", 6, "consumer-b")
		_, err = e.store.ClaimShard(t.Context(), claimRequest(shard, 6, "consumer-c"))
		assertFenced(t, err, "100", 6, "consumer-b")

		after, err := e.store.GetCheckpoint(t.Context(), testStream, shard)
		if err != nil {
			t.Fatalf("GetCheckpoint: %v", err)
		}
		if after.GetSequenceNumber() != "100" || after.GetLeaseToken() != 6 || after.GetOwner() != "consumer-b" ||
			!after.GetUpdatedAt().AsTime().Equal(before.GetUpdatedAt().AsTime()) {
			t.Errorf("checkpoint after refused calls = %v, want it unchanged: %v", after, before)
		}
		if n := countRows(t, e.pool, "fact_batting_game"); n != 1 {
			t.Errorf("fact rows = %d, want 1: the fenced batch must write nothing", n)
		}
		if n := countRows(t, e.pool, "dead_letter"); n != 0 {
			t.Errorf("dead letters = %d, want 0: the fenced batch must write nothing", n)
		}

		// The new owner's claim retried (its answer was lost) succeeds and changes nothing.
		cp = mustClaim(t, e.store, shard, 6, "consumer-b")
		if cp.GetSequenceNumber() != "100" || cp.GetLeaseToken() != 6 || cp.GetOwner() != "consumer-b" {
			t.Errorf("retried claim = %v, want 100 under token 6 owned by consumer-b", cp)
		}
		// It resumes from the stored checkpoint.
		assertCounts(t, mustLoad(t, e.store, fencedShardRequest("100", "200", 6, newRow(2, "g1", 1, "evt-2", "150"))), counts{inserted: 1})
		// A stale batch with the right token is a plain checkpoint mismatch, not fencing.
		_, err = e.store.Load(t.Context(), fencedShardRequest("100", "200", 6))
		if !errors.Is(err, warehouse.ErrCheckpointMismatch) || errors.Is(err, warehouse.ErrFenced) {
			t.Errorf("redelivered batch under the current token: %v, want a checkpoint mismatch", err)
		}
	})
}

func TestLoadOfAnUnclaimedShardIsFenced(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		_, err := e.store.Load(t.Context(), fencedShardRequest("", "10", 1, newRow(1, "g1", 1, "evt-1", "10")))
		assertFenced(t, err, "", 0, "")
		if n := countRows(t, e.pool, "fact_batting_game") + countRows(t, e.pool, "shard_checkpoint"); n != 1 {
			t.Errorf("fact and checkpoint rows = %d, want only newEnv's claim of another shard", n)
		}
	})
}

func TestClaimOfAClosedShardReportsIt(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		closing := request("", "50")
		closing.ShardEnd = true
		mustLoad(t, e.store, closing)
		cp := mustClaim(t, e.store, testShard, testLeaseToken+1, "consumer-b")
		if !cp.GetShardEnd() || cp.GetSequenceNumber() != "50" || cp.GetLeaseToken() != testLeaseToken+1 {
			t.Errorf("claim of a closed shard = %v, want shard_end at 50 under the new token", cp)
		}
	})
}

func TestConcurrentClaimsKeepTheGreatestToken(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 4)
		const claims = 6
		errs := make([]error, claims)
		var wg sync.WaitGroup
		for i := range claims {
			wg.Go(func() {
				_, errs[i] = e.store.ClaimShard(t.Context(), claimRequest(testShard, int64(10+i), fmt.Sprintf("consumer-%d", i)))
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil && !errors.Is(err, warehouse.ErrFenced) {
				t.Errorf("claim %d: %v, want success or fencing", i, err)
			}
		}
		if errs[claims-1] != nil {
			t.Errorf("the greatest token was refused: %v", errs[claims-1])
		}
		cp, err := e.store.GetCheckpoint(t.Context(), testStream, testShard)
		if err != nil {
			t.Fatalf("GetCheckpoint: %v", err)
		}
		if cp.GetLeaseToken() != 10+claims-1 || cp.GetOwner() != fmt.Sprintf("consumer-%d", claims-1) {
			t.Errorf("checkpoint after concurrent claims = %v, want the greatest token %d", cp, 10+claims-1)
		}
	})
}

func TestClaimRejectsInvalidRequests(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		cases := []struct {
			name  string
			req   *loadv1.ClaimShardRequest
			field string
		}{
			{"zero token", claimRequest(testShard, 0, "consumer-a"), "lease_token"},
			{"negative token", claimRequest(testShard, -1, "consumer-a"), "lease_token"},
			{"no owner", claimRequest(testShard, 2, ""), "owner"},
			{"no shard", claimRequest("", 2, "consumer-a"), "shard_id"},
			{"no stream", &loadv1.ClaimShardRequest{ShardId: testShard, LeaseToken: 2, Owner: "consumer-a"}, "stream"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				_, err := e.store.ClaimShard(t.Context(), tc.req)
				assertViolation(t, err, tc.field)
			})
		}
		cp := assertCheckpoint(t, e.store, "", false)
		if cp.GetLeaseToken() != testLeaseToken || cp.GetOwner() != testOwner {
			t.Errorf("checkpoint after invalid claims = %v, want newEnv's claim untouched", cp)
		}
	})
}
