package warehouse_test

import (
	"errors"
	"testing"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/services/loader/internal/warehouse"
)

// A clean batch on PostgreSQL commits in two round trips: the COPY (behind BEGIN) and one
// pipeline; no savepoint is opened. Its rows, players and dead letters are all written.
func TestCleanBatchCommitsInTwoRoundTrips(t *testing.T) {
	t.Parallel()
	counter := &statementCounter{}
	e := newEnvWithTracer(t, 1, counter)
	rows := func(seqs ...string) []*warehousev1.BattingGameRow {
		return []*warehousev1.BattingGameRow{newRow(1, "g1", 1, "evt-1", seqs[0]), newRow(2, "g1", 1, "evt-2", seqs[1]), newRow(1, "g2", 1, "evt-3", seqs[2])}
	}
	first := request("", "10", rows("1", "2", "3")...)
	first.Rejections = []*warehousev1.Rejection{newRejection("4", "validate")}
	// The second load, the same lines again (unchanged), finds the session's staging table
	// already there.
	second := request("10", "20", rows("11", "12", "13")...)
	for _, load := range []struct {
		req  *loadv1.LoadRequest
		want counts
	}{{first, counts{inserted: 3, deadLettered: 1}}, {second, counts{unchanged: 3}}} {
		counter.reset()
		resp := mustLoad(t, e.store, load.req)
		if copies, batches, savepoints := counter.copies.Load(), counter.batches.Load(), counter.savepoints.Load(); copies != 1 || batches != 1 || savepoints != 0 {
			t.Errorf("copies %d, pipelines %d, savepoints %d; want 1, 1, 0", copies, batches, savepoints)
		}
		assertCounts(t, resp, load.want)
		if got := resp.GetCheckpoint(); got.GetSequenceNumber() != load.req.SequenceNumber || got.GetLeaseToken() != testLeaseToken || got.GetOwner() != testOwner {
			t.Errorf("checkpoint = %v, want %s under token %d owned by %s", got, load.req.SequenceNumber, testLeaseToken, testOwner)
		}
	}
	for table, want := range map[string]int{"fact_batting_game": 3, "dim_player": 2, "dead_letter": 1} {
		if got := countRows(t, e.pool, table); got != want {
			t.Errorf("%s rows = %d, want %d", table, got, want)
		}
	}
}

// A fenced or mismatched batch is refused by the pipelined compare-and-set before anything
// is written (rows, players, dead letters), then reported as the step-by-step flow reports
// it, with the stored checkpoint.
func TestPipelinedCompareAndSetFailureWritesNothing(t *testing.T) {
	t.Parallel()
	counter := &statementCounter{}
	e := newEnvWithTracer(t, 1, counter)
	mustLoad(t, e.store, request("", "10", newRow(1, "g1", 1, "evt-1", "1")))

	// Redelivered (expected 0 while 10 is stored).
	mismatched := request("", "20", newRow(2, "g1", 1, "evt-2", "15"))
	mismatched.Rejections = []*warehousev1.Rejection{newRejection("16", "validate")}
	counter.reset()
	_, err := e.store.Load(t.Context(), mismatched)
	var mismatch *warehouse.CheckpointMismatchError
	if !errors.As(err, &mismatch) || mismatch.Stored.GetSequenceNumber() != "10" {
		t.Fatalf("error = %v, want a checkpoint mismatch carrying 10", err)
	}
	if counter.copies.Load() != 1 || counter.batches.Load() != 1 {
		t.Errorf("copies %d, pipelines %d; want the pipelined attempt (1, 1)", counter.copies.Load(), counter.batches.Load())
	}

	// Fenced: another consumer took the shard over.
	mustClaim(t, e.store, testShard, testLeaseToken+1, "consumer-b")
	fenced := request("10", "20", newRow(2, "g1", 1, "evt-2", "15"))
	fenced.Rejections = []*warehousev1.Rejection{newRejection("16", "validate")}
	_, err = e.store.Load(t.Context(), fenced)
	assertFenced(t, err, "10", testLeaseToken+1, "consumer-b")

	for table, want := range map[string]int{"fact_batting_game": 1, "dim_player": 1, "dead_letter": 0} {
		if got := countRows(t, e.pool, table); got != want {
			t.Errorf("%s rows = %d, want %d (the first load's)", table, got, want)
		}
	}
	// The session that was refused is clean: a later load of the new owner commits on it.
	next := request("10", "30", newRow(3, "g1", 1, "evt-3", "25"))
	next.LeaseToken, next.ConsumerId = testLeaseToken+1, "consumer-b"
	assertCounts(t, mustLoad(t, e.store, next), counts{inserted: 1})
	if got := countRows(t, e.pool, "fact_batting_game"); got != 2 {
		t.Errorf("fact rows after the new owner's load = %d, want 2", got)
	}
}
