package migrations_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations"
)

// grants are the statements docs/kubernetes.md gives for a schema-owning migration user
// (OWNER) and a DML-only service user (APP), run once by an administrator before the first
// install: default privileges, so the schemas and tables each migration creates are usable
// by the service without a GRANT per release.
const grants = `
GRANT CONNECT, CREATE ON DATABASE "DB" TO OWNER;
GRANT CONNECT, TEMPORARY ON DATABASE "DB" TO APP;
ALTER DEFAULT PRIVILEGES FOR ROLE OWNER GRANT USAGE ON SCHEMAS TO APP;
ALTER DEFAULT PRIVILEGES FOR ROLE OWNER GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO APP;
ALTER DEFAULT PRIVILEGES FOR ROLE OWNER GRANT USAGE, SELECT ON SEQUENCES TO APP;
`

// poolAs connects to databaseURL as user (trust authentication on the test server).
func poolAs(t *testing.T, databaseURL, user string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.User = user
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatalf("pool as %s: %v", user, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// TestDMLOnlyUserServesButCannotChangeTheSchema: the schema migrated by its owner, the
// service's user checks the version and runs the loader's kinds of statements (staging
// COPY into a temporary table, upserts, identity inserts, checkpoint updates, views,
// retention deletes), and every DDL, a migrate included, is refused.
func TestDMLOnlyUserServesButCannotChangeTheSchema(t *testing.T) {
	t.Parallel()
	databaseURL := pgtest.NewDatabase(t)
	admin := poolAs(t, databaseURL, "postgres")
	var db string
	if err := admin.QueryRow(t.Context(), `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	// Roles are cluster-wide: unique names, dropped with what they own after the test.
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	owner, app := "bx_owner_"+hex.EncodeToString(suffix[:]), "bx_app_"+hex.EncodeToString(suffix[:])
	for _, role := range []string{owner, app} {
		if _, err := admin.Exec(t.Context(), `CREATE ROLE `+role+` LOGIN`); err != nil {
			t.Fatalf("create role: %v", err)
		}
	}
	t.Cleanup(func() {
		ctx := context.Background()
		// One role at a time: the owner's default privileges name the app role, and a
		// single DROP OWNED of both trips over that entry twice.
		for _, role := range []string{app, owner} {
			if _, err := admin.Exec(ctx, `DROP OWNED BY `+role+` CASCADE`); err != nil {
				t.Errorf("drop what %s owns: %v", role, err)
			}
			if _, err := admin.Exec(ctx, `DROP ROLE IF EXISTS `+role); err != nil {
				t.Errorf("drop role %s: %v", role, err)
			}
		}
	})
	statements := strings.NewReplacer("OWNER", owner, "APP", app, "DB", db).Replace(grants)
	if _, err := admin.Exec(t.Context(), statements); err != nil {
		t.Fatalf("grants: %v", err)
	}

	ownerPool := poolAs(t, databaseURL, owner)
	if _, err := migrations.Migrate(t.Context(), ownerPool, migrations.DefaultSchema, nil); err != nil {
		t.Fatalf("migrate as the owner: %v", err)
	}

	appPool := poolAs(t, databaseURL, app)
	if _, err := migrations.Check(t.Context(), appPool, migrations.DefaultSchema); err != nil {
		t.Fatalf("Check as the DML user: %v", err)
	}
	err := pgx.BeginFunc(t.Context(), appPool, func(tx pgx.Tx) error {
		for _, sql := range []string{
			`SET LOCAL search_path = boxscore`,
			`INSERT INTO dim_player (player_id, name, team, last_game_date, updated_at) VALUES (1, 'A', 'LAD', '2024-04-01', now())
			 ON CONFLICT (player_id) DO UPDATE SET name = excluded.name`,
			`CREATE TEMP TABLE fact_batting_game_staging (LIKE boxscore.fact_batting_game INCLUDING DEFAULTS) ON COMMIT DROP`,
			`INSERT INTO dead_letter (stage, reason, stream, shard_id, sequence_number) VALUES ('validate', 'r', 's', 'sh', '1')
			 ON CONFLICT DO NOTHING`,
			`INSERT INTO shard_checkpoint (stream, shard_id, sequence_number) VALUES ('s', 'sh', '1')`,
			`UPDATE shard_checkpoint SET sequence_number = '2' WHERE stream = 's'`,
			`SELECT count(*) FROM batting_season`,
			`DELETE FROM dead_letter WHERE created_at < now() - interval '1 day'`,
		} {
			if _, err := tx.Exec(t.Context(), sql); err != nil {
				return errors.Join(errors.New(sql), err)
			}
		}
		// COPY into the staging table, as UpsertFacts does.
		_, err := tx.CopyFrom(t.Context(), pgx.Identifier{"fact_batting_game_staging"}, []string{"player_id"}, pgx.CopyFromRows(nil))
		return err
	})
	if err != nil {
		t.Fatalf("the DML user cannot run the loader's statements: %v", err)
	}

	for _, ddl := range []string{
		`CREATE TABLE boxscore.intruder (id int)`,
		`ALTER TABLE boxscore.dead_letter ADD COLUMN intruder int`,
		`DROP TABLE boxscore.dim_player`,
		`CREATE INDEX intruder_idx ON boxscore.dead_letter (reason)`,
		`CREATE SCHEMA intruder`,
	} {
		_, err := appPool.Exec(t.Context(), ddl)
		if pgErr := (*pgconn.PgError)(nil); !errors.As(err, &pgErr) || (pgErr.Code != "42501" && pgErr.Code != "42P01") {
			t.Errorf("%s as the DML user: %v, want refused (insufficient privilege)", ddl, err)
		}
	}
	if err := migrations.Apply(t.Context(), appPool, "boxscore_other", nil); err == nil {
		t.Error("migrate as the DML user succeeded, want it refused")
	}
}
