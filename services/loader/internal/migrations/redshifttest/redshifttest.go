// Package redshifttest runs the warehouse's Redshift migrations on PostgreSQL 15, for the
// tests of the Redshift path (there is no Redshift here). The migrations go through the
// same runner as on Redshift (migrations.Redshift: goose's Redshift dialect, the lock table,
// the simple protocol, literals instead of bound arguments); only Rewrite stands between
// each statement and PostgreSQL.
//
// Rewrite changes the clauses PostgreSQL lacks, and nothing else:
//
//   - DISTSTYLE ALL|EVEN|AUTO|KEY, DISTKEY (...), [COMPOUND|INTERLEAVED] SORTKEY (...) and a
//     column's ENCODE <encoding> are removed: data placement, which PostgreSQL has no notion
//     of and which changes no result;
//   - VARBYTE and VARBYTE(n) become bytea (PostgreSQL's variable-length bytes; the bound n
//     is not enforced);
//   - IDENTITY(seed, step) becomes GENERATED ALWAYS AS IDENTITY (START WITH seed INCREMENT
//     BY step): like Redshift's IDENTITY, it refuses an explicit value on INSERT (Redshift's
//     values are not consecutive; PostgreSQL's are: do not rely on either);
//   - SYSDATE becomes now(): both the start of the transaction (Redshift's in UTC, without
//     a time zone, stored into TIMESTAMPTZ columns as UTC).
//
// What is NOT rewritten, and so must be valid on both: every type other than VARBYTE
// (VARCHAR(n) counts characters on PostgreSQL and bytes on Redshift: PostgreSQL accepts
// what Redshift accepts, not always the reverse), every constraint, every view, every
// statement of the runner itself.
package redshifttest

import (
	"context"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations"
)

// rewrites are applied in order; see the package comment.
var rewrites = []struct {
	pattern     *regexp.Regexp
	replacement string
}{
	{regexp.MustCompile(`(?i)\s*\bDISTSTYLE\s+(ALL|EVEN|AUTO|KEY)\b`), ""},
	{regexp.MustCompile(`(?i)\s*\bDISTKEY\s*\([^)]*\)`), ""},
	{regexp.MustCompile(`(?i)\s*\b(COMPOUND\s+|INTERLEAVED\s+)?SORTKEY\s*\([^)]*\)`), ""},
	{regexp.MustCompile(`(?i)\s+\bENCODE\s+[a-z0-9_]+`), ""},
	{regexp.MustCompile(`(?i)\bVARBYTE\b(\s*\(\s*\d+\s*\))?`), "bytea"},
	{regexp.MustCompile(`(?i)\bIDENTITY\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)`), "GENERATED ALWAYS AS IDENTITY (START WITH $1 INCREMENT BY $2)"},
	{regexp.MustCompile(`(?i)\bSYSDATE\b`), "now()"},
}

// Rewrite returns statement, written for Redshift, as PostgreSQL 15 runs it (see the
// package comment for the complete list of changes).
func Rewrite(statement string) string {
	for _, r := range rewrites {
		statement = r.pattern.ReplaceAllString(statement, r.replacement)
	}
	return statement
}

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
// Redshift. The tables then have the Redshift shape: no primary key, no unique index, no
// CHECK.
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
