// Package migrations holds the warehouse schema as versioned SQL files, applied with goose
// (through pkg/pgmigrate) by `loader migrate` (or at start with --migrate); the loader
// serves only on a schema at exactly the newest version it carries (Check).
//
// Every table lives in one PostgreSQL schema (DefaultSchema unless configured), and so does
// goose's version table: several deployments, or several tests, can share a database
// without seeing each other's tables.
package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/pgmigrate"
	"github.com/boxscore-dev/boxscore/pkg/postgres"
)

// DefaultSchema is the schema the warehouse tables live in when none is configured.
const DefaultSchema = "boxscore"

//go:embed sql/*.sql
var embedded embed.FS

// ValidateSchema reports whether schema can be used as the warehouse schema name.
func ValidateSchema(schema string) error { return pgmigrate.ValidateSchema(schema) }

// Apply creates schema if needed and applies every pending warehouse migration in it; safe
// from several replicas at once (see pgmigrate.Apply). A nil logger discards goose's
// messages.
func Apply(ctx context.Context, pool *pgxpool.Pool, schema string, logger *slog.Logger) error {
	files, err := sqlFiles()
	if err != nil {
		return err
	}
	return pgmigrate.Apply(ctx, pool, files, component, schema, logger)
}

// component names the warehouse schema in errors and in pgmigrate's lock key.
const component = "loader"

func sqlFiles() (fs.FS, error) {
	files, err := fs.Sub(embedded, "sql")
	if err != nil {
		return nil, fmt.Errorf("migrations: embedded sql directory: %w", err)
	}
	return files, nil
}

// Migrate is Apply, then Check: it returns the schema's version after migrating, and
// refuses (a *pgmigrate.VersionError) a schema newer than this binary knows.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string, logger *slog.Logger) (int64, error) {
	// Apply refuses a newer schema too; checking first names the loader in the message.
	if _, err := Check(ctx, pool, schema); err != nil {
		if verr := (*pgmigrate.VersionError)(nil); errors.As(err, &verr) && verr.Database > verr.Binary {
			return 0, err
		}
	}
	if err := Apply(ctx, pool, schema, logger); err != nil {
		return 0, err
	}
	return Check(ctx, pool, schema)
}

// Latest is the newest warehouse schema version this binary carries.
func Latest() (int64, error) {
	files, err := sqlFiles()
	if err != nil {
		return 0, err
	}
	return pgmigrate.Latest(files)
}

// Check returns schema's version, or a *pgmigrate.VersionError saying which way it differs
// from Latest (older: run `loader migrate`; newer: upgrade the loader). It only reads.
func Check(ctx context.Context, pool *pgxpool.Pool, schema string) (int64, error) {
	files, err := sqlFiles()
	if err != nil {
		return 0, err
	}
	return pgmigrate.Check(ctx, pool, files, component, schema, "loader")
}

// Schema is the warehouse schema as the loader handles it: `loader migrate`, and the
// version check at every start.
var Schema = postgres.Schema{Name: "loader", Migrate: Migrate, Check: Check}
