package lease

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

// DefaultSchema is the PostgreSQL schema of the lease table when none is configured.
const DefaultSchema = "boxscore_lease"

// versionTable is goose's history table, created inside the lease schema.
const versionTable = "goose_db_version"

//go:embed migrations/*.sql
var embeddedMigrations embed.FS

// schemaName accepts only plain lower-case identifiers, so the name can go into search_path
// and into goose's table name (which goose does not quote) as it is.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ValidateSchema reports whether schema can be used as the lease schema name.
func ValidateSchema(schema string) error {
	if !schemaName.MatchString(schema) {
		return fmt.Errorf("lease schema name %q: want a lower-case identifier matching %s", schema, schemaName)
	}
	return nil
}

// Migrate creates schema if needed and applies every pending migration of the lease table
// in it, with goose's version table in the same schema. Replicas starting together are
// safe: the schema is created under a transaction-level advisory lock and goose migrates
// under a session-level advisory lock, both keyed on the schema name. Migrate opens its
// own connections from pool's configuration (search_path set to the schema) and closes
// them before returning. A nil logger discards goose's messages.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string, logger *slog.Logger) error {
	if err := ValidateSchema(schema); err != nil {
		return err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	lockID := advisoryLockID(schema)
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// CREATE SCHEMA IF NOT EXISTS races with itself (unique violation): take turns.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockID); err != nil {
			return fmt.Errorf("take schema lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize()); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("lease migrations: schema %s: %w", schema, err)
	}

	connConfig := pool.Config().ConnConfig.Copy()
	if connConfig.RuntimeParams == nil {
		connConfig.RuntimeParams = map[string]string{}
	}
	// The schema alone: an unqualified name in a migration can only mean this schema.
	connConfig.RuntimeParams["search_path"] = schema
	db := stdlib.OpenDB(*connConfig)
	defer db.Close()
	return migrateUp(ctx, db, schema, lockID, logger)
}

func migrateUp(ctx context.Context, db *sql.DB, schema string, lockID int64, logger *slog.Logger) error {
	// Retry the lock every second so a replica that lost the race starts soon after the
	// winner is done; give up after 5 minutes as goose does.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID), lock.WithLockTimeout(1, 300))
	if err != nil {
		return fmt.Errorf("lease migrations: session locker: %w", err)
	}
	files, err := fs.Sub(embeddedMigrations, "migrations")
	if err != nil {
		return fmt.Errorf("lease migrations: embedded directory: %w", err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, files,
		goose.WithTableName(schema+"."+versionTable),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(logger),
	)
	if err != nil {
		return fmt.Errorf("lease migrations: goose provider: %w", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		var partial *goose.PartialError
		if errors.As(err, &partial) && partial.Failed != nil && partial.Failed.Source != nil {
			return fmt.Errorf("lease migrations: schema %s: apply %s: %w", schema, partial.Failed.Source.Path, err)
		}
		return fmt.Errorf("lease migrations: schema %s: %w", schema, err)
	}
	return nil
}

// advisoryLockID derives the advisory lock key from the schema name, so the lease
// migrations never wait on another schema's (the warehouse's included).
func advisoryLockID(schema string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("boxscore/shard-consumer/lease:" + schema)) // hash.Hash.Write never fails
	return int64(h.Sum64())
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
