package pgmigrate

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
)

// TestRunnersKeepThePoolsBeforeConnect: both runners open connections of their own from
// the pool's configuration; the pool's BeforeConnect (IAM credentials) must run for them,
// or a database that takes only IAM tokens refuses the migrations.
func TestRunnersKeepThePoolsBeforeConnect(t *testing.T) {
	t.Parallel()
	files := fstest.MapFS{"00001_t.sql": {Data: []byte("-- +goose Up\nCREATE TABLE t (a BIGINT) DISTSTYLE EVEN;\n-- +goose Down\nDROP TABLE t;\n")}}
	pgFiles := fstest.MapFS{"00001_t.sql": {Data: []byte("-- +goose Up\nCREATE TABLE t (a BIGINT);\n-- +goose Down\nDROP TABLE t;\n")}}
	for name, apply := range map[string]func(context.Context, *pgxpool.Pool) error{
		"Apply": func(ctx context.Context, pool *pgxpool.Pool) error {
			return Apply(ctx, pool, pgFiles, "test", "s", nil)
		},
		"ApplyRedshift": func(ctx context.Context, pool *pgxpool.Pool) error {
			return ApplyRedshift(ctx, pool, files, "test", "s", nil, RedshiftToPostgreSQL)
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			config, err := pgxpool.ParseConfig(pgtest.NewDatabase(t))
			if err != nil {
				t.Fatal(err)
			}
			var hooked atomic.Int64
			config.BeforeConnect = func(context.Context, *pgx.ConnConfig) error {
				hooked.Add(1)
				return nil
			}
			pool, err := pgxpool.NewWithConfig(t.Context(), config)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			if err := apply(t.Context(), pool); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got, own := hooked.Load(), pool.Stat().NewConnsCount(); got <= own {
				t.Errorf("BeforeConnect ran %d times, only for the pool's own %d connections", got, own)
			}
		})
	}
}
