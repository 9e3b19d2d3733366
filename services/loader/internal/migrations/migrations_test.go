package migrations_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations"
)

// wantTables are the tables the migrations create, goose's own included.
var wantTables = []string{"batting_game_retraction", "dead_letter", "dim_player", "fact_batting_game", "goose_db_version", "shard_checkpoint", "stream_gap"}

func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func tablesIn(t *testing.T, pool *pgxpool.Pool, schema string) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(),
		`SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename`, schema)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatalf("scan table name: %v", err)
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("list tables: %v", err)
	}
	return names
}

// appliedVersions returns how many times each version was recorded as applied.
func appliedVersions(t *testing.T, pool *pgxpool.Pool, schema string) map[int64]int {
	t.Helper()
	rows, err := pool.Query(t.Context(),
		`SELECT version_id, count(*) FROM `+schema+`.goose_db_version WHERE is_applied GROUP BY version_id`)
	if err != nil {
		t.Fatalf("read goose versions: %v", err)
	}
	applied := map[int64]int{}
	for rows.Next() {
		var version int64
		var count int
		if err := rows.Scan(&version, &count); err != nil {
			t.Fatalf("scan version: %v", err)
		}
		applied[version] = count
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read goose versions: %v", err)
	}
	return applied
}

func assertMigrated(t *testing.T, pool *pgxpool.Pool, schema string) {
	t.Helper()
	got := tablesIn(t, pool, schema)
	if len(got) != len(wantTables) {
		t.Fatalf("tables in %s = %v, want %v", schema, got, wantTables)
	}
	for i := range got {
		if got[i] != wantTables[i] {
			t.Fatalf("tables in %s = %v, want %v", schema, got, wantTables)
		}
	}
	applied := appliedVersions(t, pool, schema)
	for version := int64(1); version <= latest(t); version++ {
		if applied[version] != 1 {
			t.Errorf("version %d recorded %d times, want once (all: %v)", version, applied[version], applied)
		}
	}
	if public := tablesIn(t, pool, "public"); len(public) != 0 {
		t.Errorf("tables in public = %v, want none: everything belongs in %s", public, schema)
	}
}

func TestApplyTwiceIsIdempotent(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	for range 2 {
		if err := migrations.Apply(t.Context(), pool, migrations.DefaultSchema, nil); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	assertMigrated(t, pool, migrations.DefaultSchema)
}

func TestApplyConcurrently(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	const replicas = 2
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() {
			errs[i] = migrations.Apply(t.Context(), pool, "loader_concurrent", nil)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: Apply: %v", i, err)
		}
	}
	assertMigrated(t, pool, "loader_concurrent")
}

func TestApplyKeepsSchemasApart(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	for _, schema := range []string{"tenant_a", "tenant_b"} {
		if err := migrations.Apply(t.Context(), pool, schema, nil); err != nil {
			t.Fatalf("Apply %s: %v", schema, err)
		}
	}
	assertMigrated(t, pool, "tenant_a")
	assertMigrated(t, pool, "tenant_b")
}

func TestApplyRejectsUnsafeSchemaNames(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	for _, schema := range []string{"", "Boxscore", "box-score", "x; DROP TABLE y", "1abc"} {
		if err := migrations.Apply(context.Background(), pool, schema, nil); err == nil {
			t.Errorf("Apply(%q) succeeded, want an error", schema)
		}
	}
	if got := tablesIn(t, pool, "public"); len(got) != 0 {
		t.Errorf("tables in public = %v after refused schemas, want none", got)
	}
}
