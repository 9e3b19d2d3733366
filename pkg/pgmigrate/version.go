package pgmigrate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pressly/goose/v3"
)

// Latest returns the newest migration version among files (goose SQL files named
// NNNNN_name.sql): the schema version this binary understands. A new file is picked up by
// its name alone, nothing else lists the versions.
func Latest(files fs.FS) (int64, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return 0, fmt.Errorf("list migrations: %w", err)
	}
	var latest int64
	for _, name := range names {
		version, err := goose.NumericComponent(path.Base(name))
		if err != nil {
			return 0, fmt.Errorf("migration %s: %w", name, err)
		}
		latest = max(latest, version)
	}
	if latest == 0 {
		return 0, errors.New("no migrations found")
	}
	return latest, nil
}

// Version returns the schema version recorded in schema's goose version table: the highest
// version applied, 0 when the schema or its version table does not exist yet. It only
// reads, so a DML-only user can call it.
func Version(ctx context.Context, pool *pgxpool.Pool, schema string) (int64, error) {
	if err := ValidateSchema(schema); err != nil {
		return 0, err
	}
	table := pgx.Identifier{schema, versionTable}.Sanitize()
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
		return 0, fmt.Errorf("look for %s: %w", table, err)
	}
	if !exists {
		return 0, nil
	}
	// goose deletes a version's row when it is rolled back, so the highest applied row is
	// the current version.
	var version int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(max(version_id), 0) FROM `+table+` WHERE is_applied`).Scan(&version); err != nil {
		return 0, fmt.Errorf("read %s: %w", table, err)
	}
	return version, nil
}

// VersionError reports a database schema at another version than the binary's newest
// migration: a service refuses to start on it.
type VersionError struct {
	Component string // whose schema: "loader", "lease"
	Schema    string
	Database  int64 // the version recorded in the database (0: never migrated)
	Binary    int64 // the newest migration the binary carries
	// Program is the binary ("loader", "shard-consumer"): the message names it, and its
	// migrate subcommand as the fix for an older schema.
	Program string
}

func (e *VersionError) Error() string {
	program := e.Program
	if program == "" {
		program = "binary"
	}
	if e.Database > e.Binary {
		return fmt.Sprintf("this %s understands the %s schema %q up to version %d, the database is at version %d: upgrade the %s",
			program, e.Component, e.Schema, e.Binary, e.Database, program)
	}
	advice := "apply the migrations"
	if e.Program != "" {
		advice = "run `" + e.Program + " migrate`"
	}
	return fmt.Sprintf("the %s schema %q is at version %d, this %s needs version %d: %s",
		e.Component, e.Schema, e.Database, program, e.Binary, advice)
}

// Check compares the database's schema version with the newest migration among files and
// returns the database's version: a *VersionError when they differ (older: migrations are
// pending; newer: the binary is older than the schema). It only reads, so a service
// running with a DML-only user checks its schema with it before serving. program names the
// binary in the message.
func Check(ctx context.Context, pool *pgxpool.Pool, files fs.FS, component, schema, program string) (int64, error) {
	latest, err := Latest(files)
	if err != nil {
		return 0, fmt.Errorf("%s migrations: %w", component, err)
	}
	current, err := Version(ctx, pool, schema)
	if err != nil {
		return 0, fmt.Errorf("%s schema version: %w", component, err)
	}
	if current != latest {
		return current, &VersionError{Component: component, Schema: schema, Database: current, Binary: latest, Program: program}
	}
	return current, nil
}
