// Package migrations holds the warehouse schema as versioned SQL files and applies them
// with goose at start-up.
//
// Every table lives in one PostgreSQL schema (DefaultSchema unless configured), and so does
// goose's version table: several deployments, or several tests, can share a database
// without seeing each other's tables. The SQL files use unqualified names; Apply runs them
// with search_path set to the schema.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// DefaultSchema is the schema the warehouse tables live in when none is configured.
const DefaultSchema = "boxscore"

// versionTable is goose's history table, created inside the warehouse schema.
const versionTable = "goose_db_version"

//go:embed sql/*.sql
var embedded embed.FS

// schemaName accepts only plain lower-case identifiers, so a schema name can be put in
// search_path and in goose's table name (which goose does not quote) without quoting.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ValidateSchema reports whether schema can be used as the warehouse schema name.
func ValidateSchema(schema string) error {
	if !schemaName.MatchString(schema) {
		return fmt.Errorf("schema name %q: want a lower-case identifier matching %s", schema, schemaName)
	}
	return nil
}

// Apply creates schema if needed and applies every pending migration in it. It is safe to
// call from several replicas at once: the schema is created under a transaction-level
// advisory lock, and goose holds a session-level advisory lock while it migrates. Both locks
// are keyed on the schema name, so different schemas in one database migrate independently.
//
// Apply opens its own connections (from pool's configuration, with search_path set to the
// schema) and closes them before returning: the pool's connections are never altered.
// A nil logger discards goose's messages.
func Apply(ctx context.Context, pool *pgxpool.Pool, schema string, logger *slog.Logger) error {
	if err := ValidateSchema(schema); err != nil {
		return err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	lockID := advisoryLockID(schema)

	if err := createSchema(ctx, pool, schema, lockID); err != nil {
		return err
	}

	connConfig := pool.Config().ConnConfig.Copy()
	if connConfig.RuntimeParams == nil {
		connConfig.RuntimeParams = map[string]string{}
	}
	// The schema alone, without public: an unqualified name in a migration can only ever
	// mean a table of this schema.
	connConfig.RuntimeParams["search_path"] = schema
	db := stdlib.OpenDB(*connConfig)
	defer db.Close()

	return up(ctx, db, schema, lockID, logger)
}

func createSchema(ctx context.Context, pool *pgxpool.Pool, schema string, lockID int64) error {
	// CREATE SCHEMA IF NOT EXISTS is not safe against itself: two sessions can both see no
	// schema and one fails with a unique violation. The advisory lock makes them take turns.
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockID); err != nil {
			return fmt.Errorf("take schema lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize()); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrations: schema %s: %w", schema, err)
	}
	return nil
}

func up(ctx context.Context, db *sql.DB, schema string, lockID int64, logger *slog.Logger) error {
	// Retry every second (not goose's default 5 s) so a replica that lost the race starts
	// quickly once the winner is done; give up after 5 minutes as goose does.
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(lockID),
		lock.WithLockTimeout(1, 300),
	)
	if err != nil {
		return fmt.Errorf("migrations: session locker: %w", err)
	}
	files, err := fs.Sub(embedded, "sql")
	if err != nil {
		return fmt.Errorf("migrations: embedded sql directory: %w", err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, files,
		goose.WithTableName(schema+"."+versionTable),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(logger),
	)
	if err != nil {
		return fmt.Errorf("migrations: goose provider: %w", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		var partial *goose.PartialError
		if errors.As(err, &partial) && partial.Failed != nil && partial.Failed.Source != nil {
			return fmt.Errorf("migrations: schema %s: apply %s: %w", schema, partial.Failed.Source.Path, err)
		}
		return fmt.Errorf("migrations: schema %s: %w", schema, err)
	}
	return nil
}

// advisoryLockID derives a stable advisory lock key from the schema name, so migrations
// of one schema never wait on another's.
func advisoryLockID(schema string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("boxscore/loader/migrations:" + schema)) // hash.Hash.Write never fails
	return int64(h.Sum64())
}
