package pgmigrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

// The Redshift runner: ApplyRedshift and CheckRedshift. Redshift speaks the PostgreSQL
// protocol but is not PostgreSQL, and Apply relies on what Redshift lacks:
//
//   - advisory locks (pg_advisory_lock, pg_advisory_xact_lock): replicas take turns through
//     an explicit lock table instead, LOCK TABLE <schema>.goose_lock in a transaction held,
//     on its own connection, for the whole run (lockTable);
//   - to_regclass: the version table is looked up in pg_class/pg_namespace;
//   - goose's PostgreSQL dialect (its version table uses an identity column syntax Redshift
//     refuses): goose's Redshift dialect is used;
//   - server-side bound parameters in the simple protocol: every statement is sent through
//     the simple query protocol (no prepared statements), and what goose binds (a version
//     number, a boolean) is written into the statement as a literal first (redshiftConn).
//
// Nothing here sends a statement that Redshift would refuse. To test the runner on
// PostgreSQL 15 (there is no Redshift here), a rewrite (RedshiftToPostgreSQL) can be given
// that every statement passes through just before it is sent, at the driver (redshiftConn):
// the statements a test sees are exactly those that would go to Redshift, and the rewrite
// changes only the Redshift-only clauses it lists.

// lockTable is the table whose lock serializes the migrations of one schema. It holds no
// rows; its name says what it is for anyone listing the schema.
const lockTable = "goose_lock"

// lockTimeout bounds the wait for another replica's migrations, as Apply's does.
const lockTimeout = 5 * time.Minute

// ApplyRedshift is Apply on Amazon Redshift: it creates schema if needed and applies every
// pending migration of files in it with goose's Redshift dialect, safe from several replicas
// at once (they take turns on a lock table). rewrite, when not nil, changes every statement
// just before it is sent: nil on Redshift, RedshiftToPostgreSQL to run the same migrations
// on PostgreSQL in tests. A nil logger discards goose's messages.
func ApplyRedshift(ctx context.Context, pool *pgxpool.Pool, files fs.FS, component, schema string, logger *slog.Logger, rewrite func(string) string) error {
	if err := ValidateSchema(schema); err != nil {
		return fmt.Errorf("%s migrations: %w", component, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db := openRedshiftDB(pool, schema, rewrite)
	defer func() { _ = db.Close() }() // closing a database/sql pool only releases its connections

	// An older binary must not run against a schema already newer than it knows (see Apply).
	if _, err := CheckRedshift(ctx, pool, files, component, schema, ""); err != nil {
		var verr *VersionError
		if errors.As(err, &verr) && verr.Database > verr.Binary {
			return err
		}
	}
	if err := createIfMissing(ctx, db, schema, "schema", "CREATE SCHEMA IF NOT EXISTS "+schema,
		"SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = '"+schema+"'"); err != nil {
		return fmt.Errorf("%s migrations: schema %s: %w", component, schema, err)
	}
	if err := createIfMissing(ctx, db, schema, "lock table",
		"CREATE TABLE IF NOT EXISTS "+schema+"."+lockTable+" (locked_by VARCHAR(64))",
		tableExistsQuery(schema, lockTable)); err != nil {
		return fmt.Errorf("%s migrations: schema %s: %w", component, schema, err)
	}

	provider, err := goose.NewProvider(goose.DialectRedshift, db, files,
		goose.WithTableName(schema+"."+versionTable),
		goose.WithLocker(&tableLocker{table: schema + "." + lockTable}),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(logger),
	)
	if err != nil {
		return fmt.Errorf("%s migrations: goose provider: %w", component, err)
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

// openRedshiftDB opens a database/sql pool from pool's configuration: the simple protocol,
// search_path set to the schema alone by a SET after connecting (a statement Redshift
// accepts, unlike some startup parameters), the pool's BeforeConnect (IAM credentials) kept.
func openRedshiftDB(pool *pgxpool.Pool, schema string, rewrite func(string) string) *sql.DB {
	poolConfig := pool.Config()
	connConfig := poolConfig.ConnConfig.Copy()
	connConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	opts := []stdlib.OptionOpenDB{
		stdlib.OptionAfterConnect(func(ctx context.Context, conn *pgx.Conn) error {
			statement := "SET search_path TO " + schema
			if rewrite != nil {
				statement = rewrite(statement)
			}
			if _, err := conn.Exec(ctx, statement); err != nil {
				return fmt.Errorf("set search_path: %w", err)
			}
			return nil
		}),
	}
	if poolConfig.BeforeConnect != nil {
		opts = append(opts, stdlib.OptionBeforeConnect(poolConfig.BeforeConnect))
	}
	return sql.OpenDB(&redshiftConnector{base: stdlib.GetConnector(*connConfig, opts...), rewrite: rewrite})
}

// createIfMissing runs create (an IF NOT EXISTS statement). Two replicas may race on it
// (PostgreSQL then fails one with a unique violation): a failure is ignored when exists
// (a count) finds the object afterwards.
func createIfMissing(ctx context.Context, db *sql.DB, schema, what, create, exists string) error {
	_, createErr := db.ExecContext(ctx, create)
	if createErr == nil {
		return nil
	}
	var n int64
	if err := db.QueryRowContext(ctx, exists).Scan(&n); err != nil {
		return fmt.Errorf("create %s: %w (then look for it: %w)", what, createErr, err)
	}
	if n == 0 {
		return fmt.Errorf("create %s in %s: %w", what, schema, createErr)
	}
	return nil
}

// tableExistsQuery counts the tables named table in schema: pg_class and pg_namespace,
// which Redshift has (to_regclass it has not). Both names are plain identifiers
// (ValidateSchema, constants): they can be literals.
func tableExistsQuery(schema, table string) string {
	return "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace" +
		" WHERE n.nspname = '" + schema + "' AND c.relname = '" + table + "' AND c.relkind = 'r'"
}

// tableLocker is goose's Locker for Redshift: Lock begins a transaction on a connection of
// its own and takes LOCK TABLE on the lock table, which another replica's Lock then waits
// for; Unlock ends the transaction. The migrations run on other connections meanwhile.
type tableLocker struct {
	table string
	conn  *sql.Conn
	tx    *sql.Tx
}

func (l *tableLocker) Lock(ctx context.Context, db *sql.DB) error {
	if l.tx != nil {
		return errors.New("lock table: already locked")
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("lock table: connection: %w", err)
	}
	// The whole transaction, not only the wait, is bound by the lock context: it is the
	// lock's lifetime, ended by Unlock.
	tx, err := conn.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return errors.Join(fmt.Errorf("lock table: begin: %w", err), conn.Close())
	}
	waitCtx, cancel := context.WithTimeout(ctx, lockTimeout)
	defer cancel()
	if _, err := tx.ExecContext(waitCtx, "LOCK TABLE "+l.table); err != nil {
		return errors.Join(fmt.Errorf("lock table %s (another replica migrating for over %s?): %w", l.table, lockTimeout, err),
			tx.Rollback(), conn.Close())
	}
	l.conn, l.tx = conn, tx
	return nil
}

func (l *tableLocker) Unlock(context.Context, *sql.DB) error {
	if l.tx == nil {
		return errors.New("lock table: not locked")
	}
	// The transaction only holds the lock: ending it releases it.
	err := l.tx.Commit()
	err = errors.Join(err, l.conn.Close())
	l.conn, l.tx = nil, nil
	if err != nil {
		return fmt.Errorf("unlock table %s: %w", l.table, err)
	}
	return nil
}

// CheckRedshift is Check on Redshift: the version recorded in the schema's goose table (0
// when there is none), compared with the newest file. It only reads; every statement
// carries its values as literals and goes through the simple protocol.
func CheckRedshift(ctx context.Context, pool *pgxpool.Pool, files fs.FS, component, schema, program string) (int64, error) {
	latest, err := Latest(files)
	if err != nil {
		return 0, fmt.Errorf("%s migrations: %w", component, err)
	}
	current, err := VersionRedshift(ctx, pool, schema)
	if err != nil {
		return 0, fmt.Errorf("%s schema version: %w", component, err)
	}
	if current != latest {
		return current, &VersionError{Component: component, Schema: schema, Database: current, Binary: latest, Program: program}
	}
	return current, nil
}

// VersionRedshift is Version on Redshift (pg_class instead of to_regclass, the simple
// protocol, no bound argument).
func VersionRedshift(ctx context.Context, pool *pgxpool.Pool, schema string) (int64, error) {
	if err := ValidateSchema(schema); err != nil {
		return 0, err
	}
	var tables int64
	// A catalog-only query runs on Redshift's leader node; the version table is read in a
	// query of its own (Redshift refuses to join leader-only catalogs with user tables).
	if err := pool.QueryRow(ctx, tableExistsQuery(schema, versionTable), pgx.QueryExecModeSimpleProtocol).Scan(&tables); err != nil {
		return 0, fmt.Errorf("look for %s.%s: %w", schema, versionTable, err)
	}
	if tables == 0 {
		return 0, nil
	}
	// goose deletes a version's row when it is rolled back, so the highest applied row is
	// the current version.
	var version int64
	if err := pool.QueryRow(ctx, "SELECT coalesce(max(version_id), 0) FROM "+schema+"."+versionTable+" WHERE is_applied",
		pgx.QueryExecModeSimpleProtocol).Scan(&version); err != nil {
		return 0, fmt.Errorf("read %s.%s: %w", schema, versionTable, err)
	}
	return version, nil
}

// formatLiteral writes a value goose binds as an SQL literal (see redshiftConn). Only the
// types goose binds are accepted.
func formatLiteral(v any) (string, error) {
	switch v := v.(type) {
	case int64:
		return strconv.FormatInt(v, 10), nil
	case bool:
		if v {
			return "true", nil
		}
		return "false", nil
	default:
		return "", fmt.Errorf("argument of type %T: the Redshift runner writes only integers and booleans as literals", v)
	}
}
