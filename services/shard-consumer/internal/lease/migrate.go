package lease

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/pgmigrate"
)

// Latest is the newest lease schema version this binary carries.
func Latest() (int64, error) {
	files, err := fs.Sub(embeddedMigrations, "migrations")
	if err != nil {
		return 0, fmt.Errorf("lease migrations: embedded directory: %w", err)
	}
	return pgmigrate.Latest(files)
}

// Check returns the lease schema's version, or a *pgmigrate.VersionError saying which way
// it differs from Latest (older: run `shard-consumer migrate`; newer: upgrade the
// shard-consumer). It only reads, so it runs with the consumer's DML-only user.
func Check(ctx context.Context, pool *pgxpool.Pool, schema string) (int64, error) {
	files, err := fs.Sub(embeddedMigrations, "migrations")
	if err != nil {
		return 0, fmt.Errorf("lease migrations: embedded directory: %w", err)
	}
	return pgmigrate.Check(ctx, pool, files, "lease", schema, "shard-consumer")
}
