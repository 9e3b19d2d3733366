// Package redshifttest runs the warehouse's Redshift migrations on PostgreSQL 15, for the
// tests of the Redshift path (there is no Redshift here). The migrations go through the
// same runner as on Redshift (migrations.Redshift, pgmigrate.ApplyRedshift: goose's
// Redshift dialect, the lock table, the simple protocol, literals instead of bound
// arguments); only Rewrite stands between each statement and PostgreSQL.
//
// Rewrite is pgmigrate.RedshiftToPostgreSQL, whose comment lists every change: the
// distribution and sort clauses and ENCODE removed, VARBYTE to bytea, IDENTITY(s, i) to
// GENERATED ALWAYS AS IDENTITY, SYSDATE to now(). Nothing else is changed: the tables come
// out with the Redshift shape (no primary key, no unique index, no CHECK), and the views
// run as written.
package redshifttest

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/pgmigrate"
	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations"
)

// Rewrite returns statement, written for Redshift, as PostgreSQL 15 runs it.
func Rewrite(statement string) string { return pgmigrate.RedshiftToPostgreSQL(statement) }

// Set is migrations.Redshift with Rewrite installed: its Apply, Migrate and Check run on
// PostgreSQL.
func Set() (*migrations.Set, error) {
	set, err := migrations.Redshift.WithRewrite(Rewrite)
	if err != nil {
		return nil, fmt.Errorf("redshifttest: %w", err)
	}
	return set, nil
}

// Apply creates schema in pool's PostgreSQL database and applies the Redshift migrations in
// it (rewritten by Rewrite), as `loader migrate --warehouse-engine redshift` does on
// Redshift.
func Apply(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	set, err := Set()
	if err != nil {
		return err
	}
	if err := set.Apply(ctx, pool, schema, nil); err != nil {
		return fmt.Errorf("redshifttest: %w", err)
	}
	return nil
}
