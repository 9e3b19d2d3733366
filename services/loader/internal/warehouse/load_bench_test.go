package warehouse_test

import (
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations"
	"github.com/boxscore-dev/boxscore/services/loader/internal/warehouse"
)

// benchStore is newEnv for a benchmark: a migrated database of its own, one connection
// (as a loader's shard reuses one session), testShard claimed.
func benchStore(b *testing.B) *warehouse.Store {
	b.Helper()
	config, err := pgxpool.ParseConfig(pgtest.NewDatabase(b))
	if err != nil {
		b.Fatalf("parse config: %v", err)
	}
	config.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(b.Context(), config)
	if err != nil {
		b.Fatalf("pool: %v", err)
	}
	b.Cleanup(pool.Close)
	if err := migrations.Apply(b.Context(), pool, testSchema, nil); err != nil {
		b.Fatalf("migrate: %v", err)
	}
	store, err := warehouse.NewStore(pool, testSchema)
	if err != nil {
		b.Fatalf("store: %v", err)
	}
	if _, err := store.ClaimShard(b.Context(), claimRequest(testShard, testLeaseToken, testOwner)); err != nil {
		b.Fatalf("claim: %v", err)
	}
	return store
}

// BenchmarkLoad500 commits batches of 500 new lines (the consumer's default batch) of 250
// players, each batch moving the checkpoint: the whole Load, from validation to commit, on
// PostgreSQL. rows/s is the figure to compare with the pipeline's drain rate.
func BenchmarkLoad500(b *testing.B) {
	const n = 500
	store := benchStore(b)
	var expected string
	var batch int
	b.ReportAllocs()
	for b.Loop() {
		rows := make([]*warehousev1.BattingGameRow, n)
		for i := range rows {
			seq := strconv.Itoa(batch*n + i + 1)
			rows[i] = newRow(int64(i%250+1), "g"+strconv.Itoa(batch)+"-"+strconv.Itoa(i/250), 1, "evt-"+seq, seq)
		}
		next := strconv.Itoa((batch + 1) * n)
		req := &loadv1.LoadRequest{
			Stream: testStream, ShardId: testShard, ExpectedSequenceNumber: expected, SequenceNumber: next,
			Rows: rows, ConsumerId: testOwner, LeaseToken: testLeaseToken,
		}
		resp, err := store.Load(b.Context(), req)
		if err != nil {
			b.Fatalf("Load: %v", err)
		}
		if resp.GetInserted() != n {
			b.Fatalf("inserted %d of %d", resp.GetInserted(), n)
		}
		expected = next
		batch++
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
