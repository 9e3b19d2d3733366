package warehouse_test

import (
	"errors"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/services/loader/internal/warehouse"
)

// A clean batch on PostgreSQL commits in two round trips: the COPY (behind BEGIN) and one
// pipeline; no savepoint is opened. Its rows, players and dead letters are all written.
// A batch whose keys are stored already is refused by the plain INSERT tried first and
// committed by the same pipeline again with the upsert (four round trips); the loads after
// it use the upsert directly (two).
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
	// already there, and its keys stored.
	second := request("10", "20", rows("11", "12", "13")...)
	third := request("20", "30", rows("21", "22", "23")...)
	for _, load := range []struct {
		req               *loadv1.LoadRequest
		want              counts
		copies, pipelines int64
	}{
		{first, counts{inserted: 3, deadLettered: 1}, 1, 1},
		{second, counts{unchanged: 3}, 2, 2},
		{third, counts{unchanged: 3}, 1, 1},
	} {
		counter.reset()
		resp := mustLoad(t, e.store, load.req)
		if copies, batches, savepoints := counter.copies.Load(), counter.batches.Load(), counter.savepoints.Load(); copies != load.copies || batches != load.pipelines || savepoints != 0 {
			t.Errorf("load up to %s: copies %d, pipelines %d, savepoints %d; want %d, %d, 0", load.req.SequenceNumber, copies, batches, savepoints, load.copies, load.pipelines)
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

// A batch mixing new keys with stored ones (newer, unchanged, older) is refused
// by the plain INSERT and committed by the upsert, in the same transaction as its
// checkpoint, gap-free: every row as the upsert alone writes it, nothing of the refused
// attempt kept (the rows it inserted before the conflict, the checkpoint, the dead letter).
func TestPipelinedInsertRefusedByStoredKeyCommitsTheUpsert(t *testing.T) {
	t.Parallel()
	counter := &statementCounter{}
	e := newEnvWithTracer(t, 1, counter)
	reader := sdkmetric.NewManualReader()
	if err := e.store.Instrument(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")); err != nil {
		t.Fatal(err)
	}
	stored := []*warehousev1.BattingGameRow{
		newRow(1, "g1", 2, "evt-a", "1"), newRow(1, "g2", 2, "evt-b", "2"), newRow(1, "g3", 2, "evt-c", "3"),
	}
	mustLoad(t, e.store, request("", "10", stored...))

	newer := newRow(1, "g1", 3, "evt-d", "11")
	newer.Runs = 7
	unchanged := newRow(1, "g2", 2, "evt-b", "12")
	older := newRow(1, "g3", 1, "evt-e", "13")
	// New keys on both sides of the stored ones, so that the INSERT (in key order) writes
	// one before it meets a stored key.
	before, after := newRow(1, "g0", 1, "evt-f", "14"), newRow(2, "g9", 1, "evt-g", "15")
	req := request("10", "20", before, newer, unchanged, older, after)
	req.Rejections = []*warehousev1.Rejection{newRejection("16", "validate")}
	counter.reset()
	resp := mustLoad(t, e.store, req)
	assertCounts(t, resp, counts{inserted: 2, updated: 1, unchanged: 2, deadLettered: 1})
	if copies, batches, savepoints := counter.copies.Load(), counter.batches.Load(), counter.savepoints.Load(); copies != 2 || batches != 2 || savepoints != 0 {
		t.Errorf("copies %d, pipelines %d, savepoints %d; want the INSERT's pipeline and the upsert's (2, 2, 0)", copies, batches, savepoints)
	}
	if got := resp.GetCheckpoint().GetSequenceNumber(); got != "20" {
		t.Errorf("checkpoint = %s, want 20", got)
	}
	for _, row := range []*warehousev1.BattingGameRow{before, newer, stored[1], stored[2], after} {
		assertFact(t, e.pool, row)
	}
	for table, want := range map[string]int{"fact_batting_game": 5, "dim_player": 2, "dead_letter": 1} {
		if got := countRows(t, e.pool, table); got != want {
			t.Errorf("%s rows = %d, want %d", table, got, want)
		}
	}
	// The refused attempt is counted, once: operators see how often updates pay it.
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	var refused int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "boxscore.loader.inserts_refused" {
				for _, dp := range sum.DataPoints {
					refused += dp.Value
				}
			}
		}
	}
	if refused != 1 {
		t.Errorf("boxscore.loader.inserts_refused = %d, want 1", refused)
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
