// Package migrations holds the warehouse schema as versioned SQL files, applied with goose
// by `loader migrate` (or at start with --migrate); the loader serves only on a schema at
// exactly the newest version it carries (Check).
//
// There is one set of files per warehouse engine (ForEngine): sql/ for PostgreSQL (the
// package-level functions, through pkg/pgmigrate) and redshift/ for Amazon Redshift
// (Redshift, through pgmigrate.ApplyRedshift). Both end with the same tables and columns; a
// test keeps them from drifting apart.
//
// Every table lives in one PostgreSQL schema (DefaultSchema unless configured), and so does
// goose's version table: several deployments, or several tests, can share a database
// without seeing each other's tables.
package migrations

import (
	"context"
	"embed"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/pgmigrate"
	"github.com/boxscore-dev/boxscore/pkg/postgres"
)

// DefaultSchema is the schema the warehouse tables live in when none is configured.
const DefaultSchema = "boxscore"

// embedded holds both sets: sql/ (PostgreSQL) and redshift/ (Amazon Redshift).
//
//go:embed sql/*.sql redshift/*.sql
var embedded embed.FS

// ValidateSchema reports whether schema can be used as the warehouse schema name.
func ValidateSchema(schema string) error { return pgmigrate.ValidateSchema(schema) }

// Apply creates schema if needed and applies every pending PostgreSQL warehouse migration in it; safe
// from several replicas at once (see pgmigrate.Apply). A nil logger discards goose's
// messages.
func Apply(ctx context.Context, pool *pgxpool.Pool, schema string, logger *slog.Logger) error {
	return PostgreSQL.Apply(ctx, pool, schema, logger)
}

// component names the warehouse schema in errors and in pgmigrate's lock key.
const component = "loader"

// Migrate is Apply, then Check: it returns the schema's version after migrating, and
// refuses (a *pgmigrate.VersionError) a schema newer than this binary knows.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string, logger *slog.Logger) (int64, error) {
	return PostgreSQL.Migrate(ctx, pool, schema, logger)
}

// Latest is the newest warehouse schema version this binary carries.
func Latest() (int64, error) { return PostgreSQL.Latest() }

// Check returns schema's version, or a *pgmigrate.VersionError saying which way it differs
// from Latest (older: run `loader migrate`; newer: upgrade the loader). It only reads.
func Check(ctx context.Context, pool *pgxpool.Pool, schema string) (int64, error) {
	return PostgreSQL.Check(ctx, pool, schema)
}

// Schema is the warehouse schema as the loader handles it: `loader migrate`, and the
// version check at every start.
var Schema = postgres.Schema{Name: "loader", Migrate: Migrate, Check: Check}
