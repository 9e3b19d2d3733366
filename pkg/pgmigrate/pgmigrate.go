// Package pgmigrate applies a component's versioned SQL migrations to its own PostgreSQL
// schema with goose. The warehouse (loader) and the lease store (shard-consumer) each own a
// schema; both migrate through here.
//
// Every table of a component lives in one schema, and so does goose's version table:
// several components, deployments or tests can share a database without seeing each
// other's tables. The SQL files use unqualified names; Apply runs them with search_path set
// to the schema alone.
package pgmigrate

import (
	"context"
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

// versionTable is goose's history table, created inside the component's schema.
const versionTable = "goose_db_version"

// schemaName accepts only plain lower-case identifiers, so a schema name can be put in
// search_path and in goose's table name (which goose does not quote) without quoting.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ValidateSchema reports whether schema can be used as a schema name.
func ValidateSchema(schema string) error {
	if !schemaName.MatchString(schema) {
		return fmt.Errorf("schema name %q: want a lower-case identifier matching %s", schema, schemaName)
	}
	return nil
}

// Apply creates schema if needed and applies every pending migration of files (a directory
// of goose SQL files) in it. component names the owner in errors and in the advisory lock
// key. It is safe to call from several replicas at once: the schema is created under a
// transaction-level advisory lock, and goose holds a session-level advisory lock while it
// migrates; both are keyed on component and schema, so different schemas migrate
// independently.
//
// Apply opens its own connections (from pool's configuration, search_path set to the
// schema) and closes them before returning: the pool's connections are never altered. A nil
// logger discards goose's messages.
func Apply(ctx context.Context, pool *pgxpool.Pool, files fs.FS, component, schema string, logger *slog.Logger) error {
	if err := ValidateSchema(schema); err != nil {
		return fmt.Errorf("%s migrations: %w", component, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	lockID := advisoryLockID(component, schema)
	if err := createSchema(ctx, pool, schema, lockID); err != nil {
		return fmt.Errorf("%s migrations: schema %s: %w", component, schema, err)
	}

	connConfig := pool.Config().ConnConfig.Copy()
	if connConfig.RuntimeParams == nil {
		connConfig.RuntimeParams = map[string]string{}
	}
	// The schema alone, without public: an unqualified name in a migration can only ever
	// mean a table of this schema.
	connConfig.RuntimeParams["search_path"] = schema
	// The pool's BeforeConnect (an RDS IAM token per connection, say) must run for these
	// connections too: they are opened from the configuration, not taken from the pool.
	var opts []stdlib.OptionOpenDB
	if before := pool.Config().BeforeConnect; before != nil {
		opts = append(opts, stdlib.OptionBeforeConnect(before))
	}
	db := stdlib.OpenDB(*connConfig, opts...)
	defer db.Close()

	// Retry the lock every second (not goose's default 5 s) so a replica that lost the race
	// starts soon after the winner is done; give up after 5 minutes as goose does.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID), lock.WithLockTimeout(1, 300))
	if err != nil {
		return fmt.Errorf("%s migrations: session locker: %w", component, err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, files,
		goose.WithTableName(schema+"."+versionTable),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(logger),
	)
	if err != nil {
		return fmt.Errorf("%s migrations: goose provider: %w", component, err)
	}
	// An older binary (an old migrate Job, a rollback) must not run against a schema that
	// is already newer than it knows: goose would find nothing pending and succeed, and the
	// old code would then run on tables it does not understand.
	if _, err := Check(ctx, pool, files, component, schema, ""); err != nil {
		var verr *VersionError
		if errors.As(err, &verr) && verr.Database > verr.Binary {
			return err
		}
	}
	if _, err := provider.Up(ctx); err != nil {
		var partial *goose.PartialError
		if errors.As(err, &partial) && partial.Failed != nil && partial.Failed.Source != nil {
			return fmt.Errorf("%s migrations: schema %s: apply %s: %w", component, schema, partial.Failed.Source.Path, err)
		}
		return fmt.Errorf("%s migrations: schema %s: %w", component, schema, err)
	}
	return nil
}

func createSchema(ctx context.Context, pool *pgxpool.Pool, schema string, lockID int64) error {
	// CREATE SCHEMA IF NOT EXISTS is not safe against itself: two sessions can both see no
	// schema and one fails with a unique violation. The advisory lock makes them take turns.
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockID); err != nil {
			return fmt.Errorf("take schema lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize()); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
		return nil
	})
}

// advisoryLockID derives a stable advisory lock key from the component and schema names.
func advisoryLockID(component, schema string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("boxscore/" + component + "/migrations:" + schema)) // hash.Hash.Write never fails
	return int64(h.Sum64())
}
