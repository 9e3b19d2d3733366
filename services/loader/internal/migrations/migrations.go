// Package migrations holds the warehouse schema as versioned SQL files, applied with goose
// (through pkg/pgmigrate) at start-up.
//
// Every table lives in one PostgreSQL schema (DefaultSchema unless configured), and so does
// goose's version table: several deployments, or several tests, can share a database
// without seeing each other's tables.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/pgmigrate"
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
	files, err := fs.Sub(embedded, "sql")
	if err != nil {
		return fmt.Errorf("migrations: embedded sql directory: %w", err)
	}
	return pgmigrate.Apply(ctx, pool, files, "loader", schema, logger)
}
