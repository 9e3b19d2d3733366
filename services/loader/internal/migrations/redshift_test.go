package migrations_test

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/pgmigrate"
	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations"
	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations/redshifttest"
)

// loaderTables are the tables the loader writes, on both engines (goose's tables aside).
var loaderTables = []string{"batting_game_retraction", "dead_letter", "dim_player", "fact_batting_game", "shard_checkpoint", "stream_gap"}

// column is a column as information_schema describes it.
type column struct {
	name, dataType string
	nullable       bool
	hasDefault     bool // a DEFAULT or an identity
}

func columnsOf(t *testing.T, pool *pgxpool.Pool, schema, table string) []column {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
SELECT column_name, data_type, is_nullable = 'YES', column_default IS NOT NULL OR is_identity = 'YES'
FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, schema, table)
	if err != nil {
		t.Fatalf("columns of %s.%s: %v", schema, table, err)
	}
	var cols []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.dataType, &c.nullable, &c.hasDefault); err != nil {
			t.Fatalf("scan column: %v", err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("columns of %s.%s: %v", schema, table, err)
	}
	return cols
}

// compatibleType says whether a Redshift column type (as PostgreSQL shows it after
// redshifttest.Rewrite) holds what the PostgreSQL column holds.
func compatibleType(postgresType, redshiftType string) bool {
	if postgresType == "text" {
		return redshiftType == "character varying"
	}
	return postgresType == redshiftType
}

func applyRedshift(t *testing.T, pool *pgxpool.Pool, schema string) {
	t.Helper()
	if err := redshifttest.Apply(t.Context(), pool, schema); err != nil {
		t.Fatalf("redshifttest.Apply: %v", err)
	}
}

// TestRedshiftTablesMatchPostgreSQL keeps the two DDLs from drifting apart: every table the
// PostgreSQL migrations end with exists on Redshift with the same columns, in the same
// order, with a compatible type, the same nullability and the same presence of a default.
func TestRedshiftTablesMatchPostgreSQL(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	if err := migrations.Apply(t.Context(), pool, "pg", nil); err != nil {
		t.Fatalf("Apply (PostgreSQL): %v", err)
	}
	applyRedshift(t, pool, "rs")

	pgTables := slices.DeleteFunc(tablesIn(t, pool, "pg"), func(n string) bool { return strings.HasPrefix(n, "goose_") })
	rsTables := slices.DeleteFunc(tablesIn(t, pool, "rs"), func(n string) bool { return strings.HasPrefix(n, "goose_") })
	if !slices.Equal(pgTables, loaderTables) || !slices.Equal(rsTables, loaderTables) {
		t.Fatalf("tables: PostgreSQL %v, Redshift %v, want both %v", pgTables, rsTables, loaderTables)
	}
	for _, table := range loaderTables {
		pgCols, rsCols := columnsOf(t, pool, "pg", table), columnsOf(t, pool, "rs", table)
		if len(pgCols) != len(rsCols) {
			t.Errorf("%s: %d columns on PostgreSQL, %d on Redshift:\n  pg %v\n  rs %v", table, len(pgCols), len(rsCols), pgCols, rsCols)
			continue
		}
		for i, pg := range pgCols {
			rs := rsCols[i]
			switch {
			case pg.name != rs.name:
				t.Errorf("%s column %d: %q on PostgreSQL, %q on Redshift", table, i+1, pg.name, rs.name)
			case !compatibleType(pg.dataType, rs.dataType):
				t.Errorf("%s.%s: %s on PostgreSQL, %s on Redshift", table, pg.name, pg.dataType, rs.dataType)
			case pg.nullable != rs.nullable:
				t.Errorf("%s.%s: nullable %t on PostgreSQL, %t on Redshift", table, pg.name, pg.nullable, rs.nullable)
			case pg.hasDefault != rs.hasDefault:
				t.Errorf("%s.%s: default %t on PostgreSQL, %t on Redshift", table, pg.name, pg.hasDefault, rs.hasDefault)
			}
		}
	}
}

// TestRedshiftTablesHaveNoKeysOrIndexes: what Redshift does not enforce is not declared, so
// the tests of the Redshift path on PostgreSQL cannot lean on a key Redshift lacks.
func TestRedshiftTablesHaveNoKeysOrIndexes(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	applyRedshift(t, pool, "rs")
	var indexes, constraints int
	if err := pool.QueryRow(t.Context(),
		`SELECT count(*) FROM pg_indexes WHERE schemaname = 'rs' AND tablename = ANY($1)`, loaderTables).Scan(&indexes); err != nil {
		t.Fatalf("count indexes: %v", err)
	}
	if err := pool.QueryRow(t.Context(), `
SELECT count(*) FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
WHERE n.nspname = 'rs' AND r.relname = ANY($1) AND c.contype <> 'n'`, loaderTables).Scan(&constraints); err != nil {
		t.Fatalf("count constraints: %v", err)
	}
	if indexes != 0 || constraints != 0 {
		t.Errorf("Redshift tables have %d indexes and %d constraints, want none", indexes, constraints)
	}
	// No key: the same (player, game) twice is accepted, as on Redshift (the loader's MERGE
	// is what keeps it unique).
	for range 2 {
		if _, err := pool.Exec(t.Context(), `
INSERT INTO rs.fact_batting_game (player_id, game_id, game_date, game_number, season, opponent, home,
  plate_appearances, at_bats, runs, hits, singles, doubles, triples, home_runs, rbi, base_on_balls,
  intentional_walks, strike_outs, hit_by_pitch, sac_bunts, sac_flies, stolen_bases, caught_stealing,
  ground_into_double_play, total_bases, extra_base_hits, times_on_base, event_id, version)
VALUES (1, 'g1', '2024-04-01', 0, 2024, 'SF', true, 4, 4, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 'e1', 1)`); err != nil {
			t.Fatalf("insert fact row: %v", err)
		}
	}
}

func TestRedshiftApplyTwiceIsIdempotent(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	for range 2 {
		applyRedshift(t, pool, "rs")
	}
	assertRedshiftMigrated(t, pool, "rs")
}

func TestRedshiftApplyConcurrently(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	const replicas = 3
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() { errs[i] = redshifttest.Apply(t.Context(), pool, "rs") })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: Apply: %v", i, err)
		}
	}
	assertRedshiftMigrated(t, pool, "rs")
}

func assertRedshiftMigrated(t *testing.T, pool *pgxpool.Pool, schema string) {
	t.Helper()
	want := append(slices.Clone(loaderTables), "goose_db_version", "goose_lock")
	slices.Sort(want)
	if got := tablesIn(t, pool, schema); !slices.Equal(got, want) {
		t.Fatalf("tables in %s = %v, want %v", schema, got, want)
	}
	latest, err := migrations.Redshift.Latest()
	if err != nil {
		t.Fatalf("Latest: %v", err)
	}
	applied := appliedVersions(t, pool, schema)
	for version := int64(1); version <= latest; version++ {
		if applied[version] != 1 {
			t.Errorf("version %d recorded %d times, want once (all: %v)", version, applied[version], applied)
		}
	}
	if public := tablesIn(t, pool, "public"); len(public) != 0 {
		t.Errorf("tables in public = %v, want none", public)
	}
}

func TestRedshiftCheckAndMigrate(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	set, err := redshifttest.Set()
	if err != nil {
		t.Fatal(err)
	}
	latest, err := set.Latest()
	if err != nil {
		t.Fatalf("Latest: %v", err)
	}
	var verr *pgmigrate.VersionError
	if _, err := set.Check(t.Context(), pool, "rs"); !errors.As(err, &verr) || verr.Database != 0 || verr.Binary != latest {
		t.Fatalf("Check before migrating = %v, want a VersionError from 0 to %d", err, latest)
	}
	if got, err := set.Migrate(t.Context(), pool, "rs", nil); err != nil || got != latest {
		t.Fatalf("Migrate = %d, %v; want %d", got, err, latest)
	}
	if got, err := set.Check(t.Context(), pool, "rs"); err != nil || got != latest {
		t.Fatalf("Check after migrating = %d, %v; want %d", got, err, latest)
	}
	// A schema newer than the binary is refused, by Check and by Migrate.
	if _, err := pool.Exec(t.Context(), `INSERT INTO rs.goose_db_version (version_id, is_applied) VALUES ($1, true)`, latest+1); err != nil {
		t.Fatalf("record a newer version: %v", err)
	}
	for name, run := range map[string]func() error{
		"Check":   func() error { _, err := set.Check(t.Context(), pool, "rs"); return err },
		"Migrate": func() error { _, err := set.Migrate(t.Context(), pool, "rs", nil); return err },
	} {
		if err := run(); !errors.As(err, &verr) || verr.Database != latest+1 {
			t.Errorf("%s on a newer schema = %v, want a VersionError at %d", name, err, latest+1)
		}
	}
}

// TestRedshiftRunnerSendsOnlyWhatRedshiftAccepts records every statement the runner sends
// (the rewrite hook sees each one as it would go to Redshift) and refuses what Redshift
// lacks.
func TestRedshiftRunnerSendsOnlyWhatRedshiftAccepts(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	var mu sync.Mutex
	var sent []string
	set, err := migrations.Redshift.WithRewrite(func(statement string) string {
		mu.Lock()
		sent = append(sent, statement)
		mu.Unlock()
		return redshifttest.Rewrite(statement)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Apply(t.Context(), pool, "rs", nil); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	forbidden := regexp.MustCompile(`(?i)pg_advisory|to_regclass|\$[0-9]|ON\s+CONFLICT|RETURNING|\bSERIAL\b|BIGSERIAL|CREATE\s+(UNIQUE\s+)?INDEX|GENERATED|\bnow\(\)|bytea|\bjsonb?\b`)
	var sawLock, sawVersionInsert bool
	for _, statement := range sent {
		if m := forbidden.FindString(statement); m != "" {
			t.Errorf("sent %q, which Redshift refuses (%q)", statement, m)
		}
		sawLock = sawLock || strings.Contains(statement, "LOCK TABLE rs.goose_lock")
		sawVersionInsert = sawVersionInsert || regexp.MustCompile(`INSERT INTO rs\.goose_db_version .*VALUES \(1, true\)`).MatchString(statement)
	}
	if !sawLock || !sawVersionInsert {
		t.Errorf("statements sent lack the lock (%t) or the version 1 insert with literals (%t):\n%s", sawLock, sawVersionInsert, strings.Join(sent, "\n"))
	}
}

func TestForEngine(t *testing.T) {
	t.Parallel()
	for engine, want := range map[string]*migrations.Set{"postgresql": migrations.PostgreSQL, "redshift": migrations.Redshift} {
		if got, err := migrations.ForEngine(engine); err != nil || got != want {
			t.Errorf("ForEngine(%q) = %v, %v; want the %s set", engine, got, err, engine)
		}
	}
	for _, engine := range []string{"", "Redshift", "postgres", "mysql"} {
		if _, err := migrations.ForEngine(engine); err == nil {
			t.Errorf("ForEngine(%q) succeeded, want an error", engine)
		}
	}
}

// queryRecorder is a pgx tracer keeping every query sent through a pool.
type queryRecorder struct {
	mu      sync.Mutex
	queries []pgx.TraceQueryStartData
}

func (r *queryRecorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries = append(r.queries, data)
	return ctx
}

func (r *queryRecorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestRedshiftCheckSendsOnlyWhatRedshiftAccepts: the start-up check runs on the loader's
// own pool (a DML-only user), not through the runner: its queries too are simple-protocol
// with literals, and use no to_regclass.
func TestRedshiftCheckSendsOnlyWhatRedshiftAccepts(t *testing.T) {
	t.Parallel()
	config, err := pgxpool.ParseConfig(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	recorder := &queryRecorder{}
	config.ConnConfig.Tracer = recorder
	pool, err := pgxpool.NewWithConfig(t.Context(), config)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	applyRedshift(t, pool, "rs")
	recorder.mu.Lock()
	recorder.queries = nil // what Apply's own check sent is the same; look at Check alone
	recorder.mu.Unlock()
	if _, err := migrations.Redshift.Check(t.Context(), pool, "rs"); err != nil {
		t.Fatalf("Check: %v", err)
	}
	recorder.mu.Lock()
	defer recorder.mu.Unlock()
	if len(recorder.queries) < 2 {
		t.Fatalf("Check sent %d queries, want the catalog lookup and the version read", len(recorder.queries))
	}
	for _, q := range recorder.queries {
		simple := len(q.Args) == 1 && q.Args[0] == pgx.QueryExecModeSimpleProtocol
		if !simple || strings.Contains(q.SQL, "$") || strings.Contains(q.SQL, "to_regclass") {
			t.Errorf("Check sent %q with %v: want the simple protocol, literals, no to_regclass", q.SQL, q.Args)
		}
	}
}
