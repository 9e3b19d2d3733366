package warehouse_test

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/pkg/testutil/s3test"
	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations/redshifttest"
	"github.com/boxscore-dev/boxscore/services/loader/internal/s3stage"
	"github.com/boxscore-dev/boxscore/services/loader/internal/warehouse"
)

// loaderStore is what the tests drive: a *warehouse.Store or a *warehouse.RedshiftStore.
type loaderStore interface {
	Load(ctx context.Context, req *loadv1.LoadRequest) (*loadv1.LoadResponse, error)
	Claim(ctx context.Context, req *loadv1.ClaimShardRequest) (*loadv1.ClaimShardResponse, error)
	ClaimShard(ctx context.Context, req *loadv1.ClaimShardRequest) (*loadv1.Checkpoint, error)
	GetCheckpoint(ctx context.Context, stream, shardID string) (*loadv1.Checkpoint, error)
	Instrument(meter metric.Meter) error
}

var (
	_ loaderStore = (*warehouse.Store)(nil)
	_ loaderStore = (*warehouse.RedshiftStore)(nil)
)

// The engines a test runs on; see forEachEngine.
const (
	enginePostgres = "postgresql"
	engineRedshift = "redshift"
)

// forEachEngine runs test as a parallel subtest per engine, handing it the newEnv of that
// engine: PostgreSQL (Store), and Redshift's statements on PostgreSQL 15 (RedshiftStore over
// the Redshift migrations, no primary key, COPY through the test double).
func forEachEngine(t *testing.T, test func(t *testing.T, newEnv func(*testing.T, int32) *env)) {
	t.Helper()
	t.Run(enginePostgres, func(t *testing.T) {
		t.Parallel()
		test(t, newEnv)
	})
	t.Run(engineRedshift, func(t *testing.T) {
		t.Parallel()
		test(t, newRedshiftEnv)
	})
}

const (
	testCopyRole      = "arn:aws:iam::123456789012:role/boxscore-redshift-copy"
	testStagingBucket = "staging"
	testRedshiftWait  = 100 * time.Millisecond
)

// redshiftParts holds what a Redshift env adds to env.
type redshiftParts struct {
	store *warehouse.RedshiftStore
	s3    *s3.Client
	// s3Endpoint is the local S3's URL.
	s3Endpoint string
	recorder   *statementRecorder
	copies     *copyDouble
}

// newRedshiftEnv is newEnv for the Redshift path: the Redshift migrations applied on
// PostgreSQL (redshifttest.Apply), a pool in pgx's exec mode as the loader uses on
// Redshift, an in-memory S3 (pkg/s3local) for the staged loads, the COPY test double, and a
// recorder that fails the test if a statement Redshift refuses was sent.
func newRedshiftEnv(t *testing.T, maxConns int32) *env {
	t.Helper()
	return newRedshiftEnvWith(t, maxConns, nil)
}

func newRedshiftEnvWith(t *testing.T, maxConns int32, configure func(*warehouse.RedshiftConfig)) *env {
	t.Helper()
	url := pgtest.NewDatabase(t)
	recorder := &statementRecorder{}
	pool := newRedshiftPool(t, url, maxConns, recorder)
	if err := redshifttest.Apply(t.Context(), pool, testSchema); err != nil {
		t.Fatalf("redshift migrations: %v", err)
	}
	installRedshiftShims(t, pool, testSchema)
	recorder.armed.Store(true)
	srv, client := s3test.Start(t, testStagingBucket)
	endpoint := srv.URL()
	e := &env{pool: pool}
	e.redshift = &redshiftParts{s3: client, s3Endpoint: endpoint, recorder: recorder, copies: &copyDouble{client: client, role: testCopyRole}}
	e.redshift.store = startRedshiftStore(t, pool, client, "loader-a", e.redshift.copies, configure)
	e.store = e.redshift.store
	t.Cleanup(func() { recorder.assertRedshiftSafe(t) })
	mustClaim(t, e.store, testShard, testLeaseToken, testOwner)
	return e
}

func newRedshiftPool(t *testing.T, url string, maxConns int32, tracer pgx.QueryTracer) *pgxpool.Pool {
	t.Helper()
	config, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("parse config: %v", err)
	}
	config.MaxConns = maxConns
	config.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	// The shims of installRedshiftShims are found by name, as Redshift's own functions.
	config.ConnConfig.RuntimeParams["search_path"] = testSchema
	config.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(t.Context(), config)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// installRedshiftShims creates, in the test schema, the two Redshift functions the load
// calls that PostgreSQL lacks: pg_last_copy_count() (answering what the COPY double set for
// the transaction) and from_hex(text) (VARBYTE from hex; bytea here).
func installRedshiftShims(t *testing.T, pool *pgxpool.Pool, schema string) {
	t.Helper()
	for _, sql := range []string{
		`CREATE FUNCTION ` + schema + `.pg_last_copy_count() RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT current_setting('boxscore.last_copy_count', true)::bigint $$`,
		`CREATE FUNCTION ` + schema + `.from_hex(text) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$ SELECT decode($1, 'hex') $$`,
	} {
		if _, err := pool.Exec(t.Context(), sql); err != nil {
			t.Fatalf("redshift shim: %v", err)
		}
	}
}

// startRedshiftStore returns a running RedshiftStore over pool (Run stops with the test).
func startRedshiftStore(t *testing.T, pool *pgxpool.Pool, client *s3.Client, loaderID string, copies *copyDouble,
	configure func(*warehouse.RedshiftConfig),
) *warehouse.RedshiftStore {
	t.Helper()
	// Small parts, so that a load of a few rows is already several objects.
	stager, err := s3stage.New(client, "s3://"+testStagingBucket+"/loads/", s3stage.WithPartBytes(2048))
	if err != nil {
		t.Fatal(err)
	}
	cfg := warehouse.RedshiftConfig{
		Schema: testSchema, Stager: stager, CopyRoleARN: testCopyRole, LoaderID: loaderID,
		Window: testRedshiftWait, CopyFromS3: copies.run,
	}
	if configure != nil {
		configure(&cfg)
	}
	store, err := warehouse.NewRedshiftStore(pool, cfg)
	if err != nil {
		t.Fatalf("redshift store: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- store.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return store
}

// copyDouble runs, on PostgreSQL, the COPY ... FROM 's3://...' the store generated: it
// parses the statement, checks the role and options, reads the manifest and its gzip CSV
// parts back from S3 (s3stage.Read), loads the records into the named staging table of the
// store's own session, and makes pg_last_copy_count() answer their number.
type copyDouble struct {
	client *s3.Client
	role   string
	mu     sync.Mutex
	seen   []string // the COPY statements run
	// refuseEventID makes a COPY whose records hold this event id fail with a data error,
	// as Redshift refusing a file.
	refuseEventID string
	// dropOneRecordOnce makes the next COPY load one record fewer than staged.
	dropOneRecordOnce bool
}

var copyStatementPattern = regexp.MustCompile(`^COPY ([a-z_]+) \(([a-z_, ]+)\) FROM '([^']+)' IAM_ROLE '([^']+)' (.+)$`)

// doubleKey marks the context of the double's own statements, which the recorder skips.
type doubleKey struct{}

func (c *copyDouble) run(ctx context.Context, tx pgx.Tx, sql string) error {
	c.mu.Lock()
	c.seen = append(c.seen, sql)
	refuse, drop := c.refuseEventID, c.dropOneRecordOnce
	c.dropOneRecordOnce = false
	c.mu.Unlock()
	m := copyStatementPattern.FindStringSubmatch(sql)
	if m == nil {
		return fmt.Errorf("copy double: not a COPY from S3: %s", sql)
	}
	table, columns, manifest, role, options := m[1], m[2], m[3], m[4], m[5]
	if role != c.role || options != s3stage.CopyOptions {
		return fmt.Errorf("copy double: role %q options %q, want %q %q", role, options, c.role, s3stage.CopyOptions)
	}
	records, err := s3stage.Read(ctx, c.client, manifest)
	if err != nil {
		return fmt.Errorf("copy double: %w", err)
	}
	width := len(strings.Split(columns, ", "))
	if drop && len(records) > 0 {
		records = records[1:]
	}
	var csv bytes.Buffer
	for i, r := range records {
		if len(r) != width {
			return fmt.Errorf("copy double: record %d has %d fields, the COPY names %d columns", i, len(r), width)
		}
		for j, f := range r {
			if refuse != "" && f != nil && *f == refuse {
				return pgDataError(fmt.Sprintf("copy double: record %d refused (event %s)", i, refuse))
			}
			if j > 0 {
				csv.WriteByte(',')
			}
			if f != nil { // NULL: an unquoted empty field in PostgreSQL's CSV
				csv.WriteString(`"` + strings.ReplaceAll(*f, `"`, `""`) + `"`)
			}
		}
		csv.WriteByte('\n')
	}
	ctx = context.WithValue(ctx, doubleKey{}, true)
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, &csv, "COPY "+table+" ("+columns+") FROM STDIN (FORMAT csv)")
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `SELECT set_config('boxscore.last_copy_count', $1, true)`, strconv.FormatInt(tag.RowsAffected(), 10))
	return err
}

func (c *copyDouble) statements() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.seen...)
}

// statementRecorder records every statement the store sends (a pgx tracer), except the
// COPY double's own.
type statementRecorder struct {
	// armed is set once the test's schema is migrated: the migrations are H1's statements,
	// checked by their own tests, not the store's.
	armed      atomic.Bool
	mu         sync.Mutex
	statements []string
}

func (r *statementRecorder) add(ctx context.Context, sql string) {
	if !r.armed.Load() || ctx.Value(doubleKey{}) != nil {
		return
	}
	r.mu.Lock()
	r.statements = append(r.statements, sql)
	r.mu.Unlock()
}

func (r *statementRecorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	r.add(ctx, data.SQL)
	// A statement may override the pool's exec mode with its first argument. Any other
	// mode fails on Redshift: the simple protocol with arguments needs
	// standard_conforming_strings, which Redshift does not report; the caching modes
	// prepare named statements.
	if len(data.Args) > 0 {
		if mode, ok := data.Args[0].(pgx.QueryExecMode); ok && mode != pgx.QueryExecModeExec {
			r.add(ctx, modeOverride+mode.String())
		}
	}
	return ctx
}

// modeOverride marks, in the recorded statements, a statement sent in another exec mode
// than the pool's (pgx.QueryExecModeExec).
const modeOverride = "QUERY EXEC MODE "

func (r *statementRecorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *statementRecorder) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromStartData) context.Context {
	r.add(ctx, "COPY "+data.TableName.Sanitize()+" FROM STDIN")
	return ctx
}

func (r *statementRecorder) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

func (r *statementRecorder) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.add(ctx, "BATCH (several statements in one call)")
	return ctx
}

func (r *statementRecorder) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *statementRecorder) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

func (r *statementRecorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.statements...)
}

// redshiftRefuses are what Redshift does not run (or what the loader must not send it).
var redshiftRefuses = []struct {
	what    string
	pattern *regexp.Regexp
}{
	{"COPY FROM STDIN", regexp.MustCompile(`(?i)\bFROM\s+STDIN\b`)},
	{"ON CONFLICT", regexp.MustCompile(`(?i)\bON\s+CONFLICT\b`)},
	{"RETURNING", regexp.MustCompile(`(?i)\bRETURNING\b`)},
	{"SAVEPOINT", regexp.MustCompile(`(?i)\bSAVEPOINT\b`)},
	{"a batch", regexp.MustCompile(`^BATCH`)},
	{"unnest or arrays", regexp.MustCompile(`(?i)\bunnest\b|\[\]`)},
	{"COLLATE", regexp.MustCompile(`(?i)\bCOLLATE\b`)},
	{"now() (leader node only on Redshift)", regexp.MustCompile(`(?i)\bnow\(\)`)},
	{"a partial index", regexp.MustCompile(`(?i)\bCREATE\s+(UNIQUE\s+)?INDEX\b`)},
	{"IS DISTINCT FROM", regexp.MustCompile(`(?i)\bIS\s+(NOT\s+)?DISTINCT\s+FROM\b`)},
	{"an exec mode other than exec", regexp.MustCompile(`^` + modeOverride)},
}

var stringLiteral = regexp.MustCompile(`'(?:[^']|'')*'`)

// redshiftProblems lists what Redshift would refuse in sql: a forbidden construct, or
// several statements in one string (a ';' outside string literals).
func redshiftProblems(sql string) []string {
	var problems []string
	for _, r := range redshiftRefuses {
		if r.pattern.MatchString(sql) {
			problems = append(problems, r.what)
		}
	}
	if strings.Contains(stringLiteral.ReplaceAllString(sql, "''"), ";") {
		problems = append(problems, "several statements")
	}
	return problems
}

func (r *statementRecorder) assertRedshiftSafe(t *testing.T) {
	t.Helper()
	statements := r.all()
	if len(statements) == 0 {
		t.Error("the recorder saw no statement: it is not installed")
	}
	for _, sql := range statements {
		if problems := redshiftProblems(sql); len(problems) > 0 {
			t.Errorf("sent to Redshift: %v in\n%s", problems, sql)
		}
	}
}

// TestRedshiftProblemsCatchesWhatRedshiftRefuses proves the recorder's rules fire.
func TestRedshiftProblemsCatchesWhatRedshiftRefuses(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		`COPY "pg_temp"."x" FROM STDIN`, `INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING`, `UPDATE t SET a = 1 RETURNING a`,
		`SAVEPOINT s`, `SELECT 1; SELECT 2`, `SELECT * FROM unnest($1::bigint[])`, `SELECT a COLLATE "C"`, `SELECT now()`,
		`BATCH (several statements in one call)`, `CREATE UNIQUE INDEX i ON t (a) WHERE b`,
		modeOverride + pgx.QueryExecModeSimpleProtocol.String(),
	} {
		if len(redshiftProblems(bad)) == 0 {
			t.Errorf("not caught: %s", bad)
		}
	}
	for _, good := range []string{`SELECT 'a;b' AS x`, `LOCK TABLE a, b`, `SELECT pg_last_copy_count()`} {
		if p := redshiftProblems(good); len(p) > 0 {
			t.Errorf("%s flagged: %v", good, p)
		}
	}
}
