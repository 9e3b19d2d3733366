package lease

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/pgmigrate"
	"github.com/boxscore-dev/boxscore/pkg/postgres"
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

// MigrateAndCheck is `shard-consumer migrate`: a lease schema newer than this binary is
// refused before anything is applied, then Migrate, then the version is read back.
func MigrateAndCheck(ctx context.Context, pool *pgxpool.Pool, schema string, logger *slog.Logger) (int64, error) {
	if _, err := Check(ctx, pool, schema); err != nil {
		if verr := (*pgmigrate.VersionError)(nil); errors.As(err, &verr) && verr.Database > verr.Binary {
			return 0, err
		}
	}
	if err := Migrate(ctx, pool, schema, logger); err != nil {
		return 0, err
	}
	return Check(ctx, pool, schema)
}

// Schema is the lease schema as the shard-consumer handles it: `shard-consumer migrate`,
// and the version check at every start.
var Schema = postgres.Schema{Name: "lease", Migrate: MigrateAndCheck, Check: Check}
