package report

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/pgmigrate"
	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
)

// The report against Amazon Redshift, run on PostgreSQL: the loader's real migrations of
// both engines (the Redshift ones through pgmigrate.ApplyRedshift and its PostgreSQL
// rewrite of the Redshift-only clauses), the same batting lines in each, and the report run
// against each must print the same leaderboard and draw the same chart, the Redshift run
// sending nothing Redshift would refuse (a statement recorder checks each one).

const loaderMigrations = "../../../../services/loader/internal/migrations"

// recorder is a pgx tracer that keeps every query and counts prepared statements.
type recorder struct {
	mu       sync.Mutex
	queries  []pgx.TraceQueryStartData
	prepares int
}

func (r *recorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries = append(r.queries, data)
	return ctx
}

func (r *recorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *recorder) TracePrepareStart(ctx context.Context, _ *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prepares++
	return ctx
}

func (r *recorder) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}

// assertRedshiftSafe fails unless every query went through the simple protocol with no
// bound argument and no prepared statement.
func (r *recorder) assertRedshiftSafe(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.queries) < 2 {
		t.Fatalf("recorded %d queries, want at least the season and the cumulative reads", len(r.queries))
	}
	if r.prepares != 0 {
		t.Errorf("%d prepared statements, want none on Redshift", r.prepares)
	}
	for _, q := range r.queries {
		simple := len(q.Args) == 1 && q.Args[0] == pgx.QueryExecModeSimpleProtocol
		if !simple || strings.Contains(q.SQL, "$") {
			t.Errorf("query %q with arguments %v: want the simple protocol and literals only", q.SQL, q.Args)
		}
	}
}

// seedBothEngines migrates a fresh database with the loader's PostgreSQL migrations (schema
// pg) and its Redshift ones (schema rs), and loads the same batting lines into both.
func seedBothEngines(t *testing.T) (url string, pool *pgxpool.Pool) {
	t.Helper()
	ctx := t.Context()
	url = pgtest.NewDatabase(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(pool.Close)
	if err := pgmigrate.Apply(ctx, pool, os.DirFS(filepath.Join(loaderMigrations, "sql")), "loader", "pg", nil); err != nil {
		t.Fatalf("PostgreSQL migrations: %v", err)
	}
	if err := pgmigrate.ApplyRedshift(ctx, pool, os.DirFS(filepath.Join(loaderMigrations, "redshift")), "loader", "rs", nil,
		pgmigrate.RedshiftToPostgreSQL); err != nil {
		t.Fatalf("Redshift migrations: %v", err)
	}
	start := time.Date(2024, 3, 28, 0, 0, 0, 0, time.UTC)
	players := []struct {
		id         int64
		name, team string
	}{{660271, "Shohei Ohtani", "LAD"}, {605141, "Mookie Betts", "LAD"}, {518692, "Freddie Freeman", "LAD"}, {900001, "Pinch Runner", "LAD"}}
	for _, schema := range []string{"pg", "rs"} {
		for p, player := range players {
			for game := range 24 {
				date := start.AddDate(0, 0, game)
				// Varied, deterministic lines; the pinch runner never bats.
				pa, ab, h, bb, hbp, sf, hr := 4+game%2, 3+(game+p)%2, (game*7+p*3)%4, (game+p)%3/2, game%11/10, game%13/12, (game+p)%7/6
				if player.id == 900001 {
					pa, ab, h, bb, hbp, sf, hr = 0, 0, 0, 0, 0, 0, 0
				}
				if ab < h {
					ab = h
				}
				pa = max(pa, ab+bb+hbp+sf)
				hr = min(hr, h)
				doubles := min(h-hr, game%3/2)
				tb := h + doubles + 3*hr
				if _, err := pool.Exec(ctx, `
INSERT INTO `+schema+`.fact_batting_game (player_id, game_id, game_date, game_number, season, opponent, home,
  plate_appearances, at_bats, runs, hits, singles, doubles, triples, home_runs, rbi, base_on_balls,
  intentional_walks, strike_outs, hit_by_pitch, sac_bunts, sac_flies, stolen_bases, caught_stealing,
  ground_into_double_play, total_bases, extra_base_hits, times_on_base, event_id, version)
VALUES ($1, $2, $3, 0, 2024, 'SD', $4, $5, $6, $7, $8, $9, $10, 0, $11, $12, $13, 0, $14, $15, 0, $16, $17, 0, 0, $18, $19, $20, $21, 1)`,
					player.id, fmt.Sprintf("G%03d", game), date, game%2 == 0, pa, ab, hr, h, h-doubles-hr, doubles, hr, hr+h/2, bb,
					ab-h, hbp, sf, game%5/4, tb, doubles+hr, h+bb+hbp, fmt.Sprintf("%d-%d", player.id, game)); err != nil {
					t.Fatalf("insert a line into %s: %v", schema, err)
				}
			}
			if _, err := pool.Exec(ctx, `INSERT INTO `+schema+`.dim_player (player_id, name, team, last_game_date, updated_at) VALUES ($1, $2, $3, $4, now())`,
				player.id, player.name, player.team, start.AddDate(0, 0, 23)); err != nil {
				t.Fatalf("insert player into %s: %v", schema, err)
			}
		}
	}
	return url, pool
}

// runReport runs the report and returns what it printed (the chart's path made neutral)
// and the chart.
func runReport(t *testing.T, cmd Command) (string, []byte) {
	t.Helper()
	cmd.Season, cmd.Chart, cmd.Note = 2024, filepath.Join(t.TempDir(), "ops.svg"), "Simulated"
	if cmd.Sort == "" && cmd.MinPA == nil {
		everyone := 0 // the pinch runner, without a plate appearance, is listed too
		cmd.MinPA = &everyone
	}
	var stdout bytes.Buffer
	if err := cmd.Run(t.Context(), &stdout); err != nil {
		t.Fatalf("Run (%s, schema %s): %v", cmd.Engine, cmd.Schema, err)
	}
	chart, err := os.ReadFile(cmd.Chart)
	if err != nil {
		t.Fatalf("read chart: %v", err)
	}
	return strings.ReplaceAll(stdout.String(), cmd.Chart, "CHART"), chart
}

func TestReportOnRedshiftPrintsWhatPostgreSQLPrints(t *testing.T) {
	t.Parallel()
	url, _ := seedBothEngines(t)
	onPostgreSQL := &recorder{}
	pgOut, pgChart := runReport(t, Command{DatabaseURL: url, Schema: "pg", Engine: enginePostgreSQL, tracer: onPostgreSQL})
	onRedshift := &recorder{}
	rsOut, rsChart := runReport(t, Command{DatabaseURL: url, Schema: "rs", Engine: engineRedshift, tracer: onRedshift})

	for _, name := range []string{"Shohei Ohtani", "Mookie Betts", "Freddie Freeman", "Pinch Runner"} {
		if !strings.Contains(pgOut, name) {
			t.Fatalf("the PostgreSQL report does not list %s:\n%s", name, pgOut)
		}
	}
	if !regexp.MustCompile(`Shohei Ohtani +LAD +24 .* \.\d{3} +\.\d{3} +\.\d{3} +1?\.\d{3}\n`).MatchString(pgOut) {
		t.Fatalf("the PostgreSQL report lacks Ohtani's 24 games and rates:\n%s", pgOut)
	}
	if rsOut != pgOut {
		t.Errorf("report on the Redshift schema:\n%s\nwant what the PostgreSQL one printed:\n%s", rsOut, pgOut)
	}
	if !bytes.Equal(rsChart, pgChart) {
		t.Errorf("the chart drawn from the Redshift schema differs from the PostgreSQL one")
	}
	onRedshift.assertRedshiftSafe(t)
	// The recorder does see prepared statements: the PostgreSQL run uses them.
	if onPostgreSQL.prepares == 0 {
		t.Errorf("no prepared statement recorded on PostgreSQL: the recorder cannot see them")
	}
}

func TestReportDetectsRedshiftFromTheServerVersion(t *testing.T) {
	t.Parallel()
	url, pool := seedBothEngines(t)
	// PostgreSQL says it is Redshift: a version() of its own, found first on the search path.
	if _, err := pool.Exec(t.Context(), `CREATE SCHEMA fake;
CREATE FUNCTION fake.version() RETURNS text LANGUAGE sql
AS $$ SELECT 'PostgreSQL 8.0.2 on i686-pc-linux-gnu, compiled by GCC gcc (GCC) 3.4.2 20041017 (Red Hat 3.4.2-6.fc3), Redshift 1.0.77467' $$`); err != nil {
		t.Fatalf("create the fake version(): %v", err)
	}
	separator := "?"
	if strings.Contains(url, "?") {
		separator = "&"
	}
	asRedshift := &recorder{}
	rsOut, _ := runReport(t, Command{DatabaseURL: url + separator + "search_path=fake,pg_catalog", Schema: "rs", Engine: engineAuto, tracer: asRedshift})
	asRedshift.assertRedshiftSafe(t)

	asPostgreSQL := &recorder{}
	pgOut, _ := runReport(t, Command{DatabaseURL: url, Schema: "pg", tracer: asPostgreSQL}) // Engine "" is auto
	if asPostgreSQL.prepares == 0 {
		t.Errorf("auto on PostgreSQL prepared nothing: it took PostgreSQL for Redshift")
	}
	if rsOut != pgOut {
		t.Errorf("report detected as Redshift:\n%s\nwant:\n%s", rsOut, pgOut)
	}
}

func TestEngineOf(t *testing.T) {
	t.Parallel()
	for version, want := range map[string]string{
		"PostgreSQL 8.0.2 on i686-pc-linux-gnu, compiled by GCC gcc (GCC) 3.4.2 20041017 (Red Hat 3.4.2-6.fc3), Redshift 1.0.77467": engineRedshift,
		"PostgreSQL 15.10 (Debian 15.10-1.pgdg120+1) on x86_64-pc-linux-gnu, compiled by gcc (Debian 12.2.0-14) 12.2.0, 64-bit":     enginePostgreSQL,
	} {
		if got := engineOf(version); got != want {
			t.Errorf("engineOf(%q) = %s, want %s", version, got, want)
		}
	}
}

func TestInlineArgs(t *testing.T) {
	t.Parallel()
	got, err := inlineArgs(`SELECT a FROM "s$1"."t" WHERE season = $1 AND note <> 'it''s $2' AND b = $2 AND d >= CAST($3 AS DATE) AND team = $4`,
		[]any{2024, int64(-7), time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC), "LAD"})
	if want := `SELECT a FROM "s$1"."t" WHERE season = 2024 AND note <> 'it''s $2' AND b = -7 AND d >= CAST('2024-05-01' AS DATE) AND team = 'LAD'`; err != nil || got != want {
		t.Errorf("inlineArgs = %q, %v; want %q", got, err, want)
	}
	for _, tc := range []struct {
		query string
		args  []any
		want  string
	}{
		{`SELECT $1`, []any{"2024'; DROP TABLE t; --"}, "only integers"},
		{`SELECT $1`, []any{`LA\`}, "only integers"},
		{`SELECT $1`, []any{2.5}, "only integers"},
		{`SELECT $2`, []any{1}, "placeholder"},
		{`SELECT $1 FROM "t`, []any{1}, "unterminated"},
	} {
		if got, err := inlineArgs(tc.query, tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("inlineArgs(%q) = %q, %v; want an error saying %q", tc.query, got, err, tc.want)
		}
	}
}

func TestConnectRefusesAnUnknownEngine(t *testing.T) {
	t.Parallel()
	if _, err := connect(t.Context(), "postgres://postgres@127.0.0.1:1/x?sslmode=disable", "mysql", nil); err == nil || !strings.Contains(err.Error(), "mysql") {
		t.Errorf("connect with engine mysql = %v, want an error naming it", err)
	}
}
