package retention_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations"
	"github.com/boxscore-dev/boxscore/services/loader/internal/retention"
)

func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := migrations.Apply(t.Context(), pool, migrations.DefaultSchema, nil); err != nil {
		t.Fatal(err)
	}
	return pool
}

// insert adds n dead letters created age ago.
func insert(t *testing.T, pool *pgxpool.Pool, n int, age time.Duration, tag string) {
	t.Helper()
	_, err := pool.Exec(t.Context(), `
INSERT INTO boxscore.dead_letter (stage, reason, stream, shard_id, sequence_number, created_at)
SELECT 'validate', 'hits_exceed_at_bats', 's', 'shard-0', $1 || '-' || g, now() - $2::interval
FROM generate_series(1, $3) AS g`, tag, age.String(), n)
	if err != nil {
		t.Fatal(err)
	}
}

func count(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM boxscore.dead_letter`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPurgeDeletesOnlyOldDeadLettersInBatchesAndCountsThem(t *testing.T) {
	pool := newPool(t)
	insert(t, pool, 25, 100*24*time.Hour, "old")
	insert(t, pool, 7, 89*24*time.Hour, "young")
	insert(t, pool, 3, 0, "new")

	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
	w, err := retention.New(pool, migrations.DefaultSchema, 90*24*time.Hour, meter, retention.WithBatchSize(10))
	if err != nil {
		t.Fatal(err)
	}
	n, err := w.PurgeOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n != 25 || count(t, pool) != 10 {
		t.Fatalf("purged %d, %d left; want 25 purged (3 batches), 10 left", n, count(t, pool))
	}
	var rows int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM boxscore.dead_letter WHERE sequence_number LIKE 'old-%'`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("old rows left: %d (%v)", rows, err)
	}
	if n, err := w.PurgeOnce(t.Context()); err != nil || n != 0 {
		t.Fatalf("second purge: %d, %v; want 0", n, err)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var purged int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "boxscore.loader.dead_letters_purged" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				purged += dp.Value
			}
		}
	}
	if purged != 25 {
		t.Fatalf("boxscore.loader.dead_letters_purged = %d, want 25", purged)
	}
}

func TestRunPurgesOnItsTimerUntilCancelled(t *testing.T) {
	pool := newPool(t)
	w, err := retention.New(pool, migrations.DefaultSchema, time.Hour, nil, retention.WithInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	insert(t, pool, 5, 2*time.Hour, "late") // arrives after the first purge: the timer gets it
	deadline := time.Now().Add(10 * time.Second)
	for count(t, pool) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d dead letters older than the retention still there", count(t, pool))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestZeroRetentionIsRefused(t *testing.T) {
	if _, err := retention.New(nil, "boxscore", 0, nil); err == nil {
		t.Fatal("a worker with retention 0 (keep forever) was built")
	}
}
