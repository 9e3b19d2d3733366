package lease

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/pgmigrate"
)

// DefaultSchema is the PostgreSQL schema of the lease table when none is configured.
const DefaultSchema = "boxscore_lease"

//go:embed migrations/*.sql
var embeddedMigrations embed.FS

// ValidateSchema reports whether schema can be used as the lease schema name.
func ValidateSchema(schema string) error {
	if err := pgmigrate.ValidateSchema(schema); err != nil {
		return fmt.Errorf("lease schema: %w", err)
	}
	return nil
}

// Migrate creates schema if needed and applies every pending migration of the lease table
// in it, with goose's version table in the same schema; replicas starting together are
// safe (see pgmigrate.Apply). A nil logger discards goose's messages.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string, logger *slog.Logger) error {
	files, err := fs.Sub(embeddedMigrations, "migrations")
	if err != nil {
		return fmt.Errorf("lease migrations: embedded directory: %w", err)
	}
	return pgmigrate.Apply(ctx, pool, files, "lease", schema, logger)
}

// PostgresStore is the Store on the PostgreSQL table created by Migrate.
type PostgresStore struct {
	pool  *pgxpool.Pool
	table string // schema-qualified, quoted
}

// NewPostgresStore returns the store on schema's lease table. Run Migrate first.
func NewPostgresStore(pool *pgxpool.Pool, schema string) (*PostgresStore, error) {
	if err := ValidateSchema(schema); err != nil {
		return nil, err
	}
	return &PostgresStore{pool: pool, table: pgx.Identifier{schema, "shard_lease"}.Sanitize()}, nil
}

// Ensure implements Store.
func (s *PostgresStore) Ensure(ctx context.Context, stream string, shardIDs []string) error {
	if len(shardIDs) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO `+s.table+` (stream, shard_id, owner, counter, updated_at)
		SELECT $1, shard_id, NULL, 0, now() FROM unnest($2::text[]) AS shard_id
		ON CONFLICT (stream, shard_id) DO NOTHING`, stream, shardIDs)
	if err != nil {
		return fmt.Errorf("create leases of %d shards of %s: %w", len(shardIDs), stream, err)
	}
	return nil
}

// List implements Store.
func (s *PostgresStore) List(ctx context.Context, stream string) ([]Lease, error) {
	rows, err := s.pool.Query(ctx, `SELECT shard_id, coalesce(owner, ''), counter FROM `+s.table+`
		WHERE stream = $1 ORDER BY shard_id`, stream)
	if err != nil {
		return nil, fmt.Errorf("list leases of %s: %w", stream, err)
	}
	leases, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Lease, error) {
		var l Lease
		err := row.Scan(&l.ShardID, &l.Owner, &l.Counter)
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("list leases of %s: %w", stream, err)
	}
	return leases, nil
}

// Take implements Store.
func (s *PostgresStore) Take(ctx context.Context, stream, shardID, owner string, observedCounter int64) (int64, bool, error) {
	if owner == "" {
		return 0, false, fmt.Errorf("take lease of shard %s: %w", shardID, errNoOwner)
	}
	return s.update(ctx, "take", shardID, `UPDATE `+s.table+`
		SET owner = $3, counter = counter + 1, updated_at = now()
		WHERE stream = $1 AND shard_id = $2 AND counter = $4
		RETURNING counter`, stream, shardID, owner, observedCounter)
}

// Renew implements Store.
func (s *PostgresStore) Renew(ctx context.Context, stream, shardID, owner string, counter int64) (int64, bool, error) {
	if owner == "" {
		return 0, false, fmt.Errorf("renew lease of shard %s: %w", shardID, errNoOwner)
	}
	return s.update(ctx, "renew", shardID, `UPDATE `+s.table+`
		SET counter = counter + 1, updated_at = now()
		WHERE stream = $1 AND shard_id = $2 AND owner = $3 AND counter = $4
		RETURNING counter`, stream, shardID, owner, counter)
}

// Release implements Store.
func (s *PostgresStore) Release(ctx context.Context, stream, shardID, owner string, counter int64) (bool, error) {
	if owner == "" {
		return false, fmt.Errorf("release lease of shard %s: %w", shardID, errNoOwner)
	}
	_, ok, err := s.update(ctx, "release", shardID, `UPDATE `+s.table+`
		SET owner = NULL, counter = counter + 1, updated_at = now()
		WHERE stream = $1 AND shard_id = $2 AND owner = $3 AND counter = $4
		RETURNING counter`, stream, shardID, owner, counter)
	return ok, err
}

// Raise implements Store.
func (s *PostgresStore) Raise(ctx context.Context, stream, shardID, owner string, counter, above int64) (int64, bool, error) {
	if owner == "" {
		return 0, false, fmt.Errorf("raise lease of shard %s: %w", shardID, errNoOwner)
	}
	return s.update(ctx, "raise", shardID, `UPDATE `+s.table+`
		SET counter = greatest(counter, $5::bigint) + 1, updated_at = now()
		WHERE stream = $1 AND shard_id = $2 AND owner = $3 AND counter = $4
		RETURNING counter`, stream, shardID, owner, counter, above)
}

func (s *PostgresStore) update(ctx context.Context, op, shardID, query string, args ...any) (int64, bool, error) {
	var counter int64
	err := s.pool.QueryRow(ctx, query, args...).Scan(&counter)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("%s lease of shard %s: %w", op, shardID, err)
	}
	return counter, true, nil
}
