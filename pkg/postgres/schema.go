package postgres

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/server"
)

// Schema is a component's schema as its service handles it: the `migrate` subcommand that
// the deployment runs first (with a DDL-capable user), and the check at every start.
type Schema struct {
	// Name says whose schema it is in messages: "warehouse", "lease".
	Name string
	// Migrate applies the component's migrations and returns the version reached.
	Migrate func(ctx context.Context, pool *pgxpool.Pool, schema string, logger *slog.Logger) (int64, error)
	// Check returns the version, or a *pgmigrate.VersionError when it is not the binary's own.
	Check func(ctx context.Context, pool *pgxpool.Pool, schema string) (int64, error)
}

// Task is the service's `migrate` subcommand: the schema brought to this binary's version,
// the version printed. databaseURL and schema point into the service's configuration, which
// holds the parsed flags by the time the task runs; options, called then, give NewPool's
// options from those flags (IAM auth, --insecure).
func (s Schema) Task(databaseURL, schema *string, options func() []Option) server.Task {
	return server.Task{
		Name: "migrate",
		Help: fmt.Sprintf("Apply the %s schema migrations (a DDL-capable user), print the schema version and exit.", s.Name),
		Run: func(ctx context.Context, logger *slog.Logger, stdout io.Writer) error {
			var opts []Option
			if options != nil {
				opts = options()
			}
			pool, err := NewPool(ctx, *databaseURL, opts...)
			if err != nil {
				return fmt.Errorf("%s pool: %w", s.Name, err)
			}
			defer pool.Close()
			version, err := s.Migrate(ctx, pool, *schema, logger)
			if err != nil {
				return err
			}
			logger.Info(s.Name+" schema migrated", "schema", *schema, "version", version)
			_, err = fmt.Fprintf(stdout, "%s schema %q at version %d\n", s.Name, *schema, version)
			return err
		},
	}
}

// Prepare is a service's start: with migrateAtStart (a development convenience) it applies
// the migrations; otherwise it only checks that the database is at this binary's version,
// so a service never runs on a schema it does not understand.
func (s Schema) Prepare(ctx context.Context, pool *pgxpool.Pool, schema string, migrateAtStart bool, logger *slog.Logger) error {
	var version int64
	var err error
	if migrateAtStart {
		version, err = s.Migrate(ctx, pool, schema, logger)
	} else {
		version, err = s.Check(ctx, pool, schema)
	}
	if err != nil {
		return fmt.Errorf("%s schema: %w", s.Name, err)
	}
	logger.Info(s.Name+" schema checked", "schema", schema, "version", version, "migrated_at_start", migrateAtStart)
	return nil
}
