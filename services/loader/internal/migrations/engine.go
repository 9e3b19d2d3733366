package migrations

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/pgmigrate"
	"github.com/boxscore-dev/boxscore/pkg/postgres"
	"github.com/boxscore-dev/boxscore/pkg/server"
)

// The warehouse engines the loader writes to (--warehouse-engine).
const (
	EnginePostgreSQL = "postgresql"
	EngineRedshift   = "redshift"
)

// Set is the warehouse schema of one engine: its migration files and the way they are
// applied and checked there. PostgreSQL and Redshift are the two sets; ForEngine picks one
// by name.
type Set struct {
	engine string
	dir    string // the embedded directory of the set's goose SQL files
	// rewrite, when set, rewrites every statement the Redshift runner sends (WithRewrite:
	// the Redshift set run on PostgreSQL in tests). nil on a real engine.
	rewrite func(statement string) string
}

// PostgreSQL is the warehouse schema on PostgreSQL (sql/*.sql, pkg/pgmigrate's runner with
// its advisory locks). Its methods are the package-level Apply, Migrate, Check and Latest.
var PostgreSQL = &Set{engine: EnginePostgreSQL, dir: "sql"}

// Redshift is the warehouse schema on Amazon Redshift (redshift/*.sql, README.md there):
// pgmigrate.ApplyRedshift's runner, goose's Redshift dialect, a lock table instead of
// advisory locks.
var Redshift = &Set{engine: EngineRedshift, dir: "redshift"}

// ForEngine returns the schema set of the named warehouse engine ("postgresql" or
// "redshift", as --warehouse-engine spells them).
func ForEngine(engine string) (*Set, error) {
	switch engine {
	case EnginePostgreSQL:
		return PostgreSQL, nil
	case EngineRedshift:
		return Redshift, nil
	default:
		return nil, fmt.Errorf("warehouse engine %q: want %q or %q", engine, EnginePostgreSQL, EngineRedshift)
	}
}

// Engine names the set's warehouse engine.
func (s *Set) Engine() string { return s.engine }

// WithRewrite returns a copy of the Redshift set whose runner passes every statement it
// sends through rewrite first: the way the Redshift migrations run on PostgreSQL in tests
// (package redshifttest), through the same runner, locks and goose dialect as on Redshift.
// It refuses the PostgreSQL set, whose runner needs no rewriting.
func (s *Set) WithRewrite(rewrite func(statement string) string) (*Set, error) {
	if s.engine != EngineRedshift {
		return nil, fmt.Errorf("migrations: only the %s set runs rewritten, not %s", EngineRedshift, s.engine)
	}
	if rewrite == nil {
		return nil, errors.New("migrations: nil rewrite")
	}
	c := *s
	c.rewrite = rewrite
	return &c, nil
}

func (s *Set) files() (fs.FS, error) {
	files, err := fs.Sub(embedded, s.dir)
	if err != nil {
		return nil, fmt.Errorf("migrations: embedded %s directory: %w", s.dir, err)
	}
	return files, nil
}

// Apply creates schema if needed and applies every pending migration of the set in it;
// safe from several replicas at once. A nil logger discards goose's messages.
func (s *Set) Apply(ctx context.Context, pool *pgxpool.Pool, schema string, logger *slog.Logger) error {
	files, err := s.files()
	if err != nil {
		return err
	}
	if s.engine == EngineRedshift {
		return pgmigrate.ApplyRedshift(ctx, pool, files, component, schema, logger, s.rewrite)
	}
	return pgmigrate.Apply(ctx, pool, files, component, schema, logger)
}

// Latest is the newest schema version of the set.
func (s *Set) Latest() (int64, error) {
	files, err := s.files()
	if err != nil {
		return 0, err
	}
	return pgmigrate.Latest(files)
}

// Check returns schema's version, or a *pgmigrate.VersionError saying which way it differs
// from Latest. It only reads, so a DML-only user can call it.
func (s *Set) Check(ctx context.Context, pool *pgxpool.Pool, schema string) (int64, error) {
	files, err := s.files()
	if err != nil {
		return 0, err
	}
	if s.engine == EngineRedshift {
		return pgmigrate.CheckRedshift(ctx, pool, files, component, schema, "loader")
	}
	return pgmigrate.Check(ctx, pool, files, component, schema, "loader")
}

// Migrate is Apply, then Check: it returns the schema's version after migrating, and
// refuses (a *pgmigrate.VersionError) a schema newer than this binary knows.
func (s *Set) Migrate(ctx context.Context, pool *pgxpool.Pool, schema string, logger *slog.Logger) (int64, error) {
	// Apply refuses a newer schema too; checking first names the loader in the message.
	if _, err := s.Check(ctx, pool, schema); err != nil {
		if verr := (*pgmigrate.VersionError)(nil); errors.As(err, &verr) && verr.Database > verr.Binary {
			return 0, err
		}
	}
	if err := s.Apply(ctx, pool, schema, logger); err != nil {
		return 0, err
	}
	return s.Check(ctx, pool, schema)
}

// Schema is the set as postgres.Schema: the migrate subcommand (Task) and the start-up
// check (Prepare).
func (s *Set) Schema() postgres.Schema {
	name := "loader"
	if s.engine == EngineRedshift {
		name = "loader (redshift)"
	}
	return postgres.Schema{Name: name, Migrate: s.Migrate, Check: s.Check}
}

// Prepare is the loader's start: with migrateAtStart it applies the migrations, otherwise
// it only checks that the schema is at this binary's version.
func (s *Set) Prepare(ctx context.Context, pool *pgxpool.Pool, schema string, migrateAtStart bool, logger *slog.Logger) error {
	return s.Schema().Prepare(ctx, pool, schema, migrateAtStart, logger)
}

// Task is the loader's `migrate` subcommand for this set.
func (s *Set) Task(databaseURL, schema *string, options func() []postgres.Option) server.Task {
	return s.Schema().Task(databaseURL, schema, options)
}

// Task is the loader's `migrate` subcommand, the engine read from *engine when it runs (the
// flags are parsed by then, not when the task is declared).
func Task(engine, databaseURL, schema *string, options func() []postgres.Option) server.Task {
	task := PostgreSQL.Task(databaseURL, schema, options)
	run := task.Run
	task.Run = func(ctx context.Context, logger *slog.Logger, stdout io.Writer) error {
		set, err := ForEngine(*engine)
		if err != nil {
			return err
		}
		if set == PostgreSQL {
			return run(ctx, logger, stdout)
		}
		return set.Task(databaseURL, schema, options).Run(ctx, logger, stdout)
	}
	return task
}
