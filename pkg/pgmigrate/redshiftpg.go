package pgmigrate

import "regexp"

// redshiftRewrites are RedshiftToPostgreSQL's changes, in order.
var redshiftRewrites = []struct {
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

// RedshiftToPostgreSQL returns statement, written for Amazon Redshift, as PostgreSQL 15
// runs it: the rewrite ApplyRedshift is given to run Redshift migrations on PostgreSQL in
// tests (there is no Redshift here). It changes the clauses PostgreSQL lacks, and nothing
// else:
//
//   - DISTSTYLE ALL|EVEN|AUTO|KEY, DISTKEY (...), [COMPOUND|INTERLEAVED] SORTKEY (...) and a
//     column's ENCODE <encoding> are removed: data placement and compression, which change
//     no result;
//   - VARBYTE and VARBYTE(n) become bytea (the bound n is not enforced);
//   - IDENTITY(seed, step) becomes GENERATED ALWAYS AS IDENTITY (START WITH seed INCREMENT
//     BY step): like Redshift's IDENTITY it refuses an explicit value on INSERT. Redshift's
//     values are unique but neither consecutive nor ordered across slices; PostgreSQL's are
//     consecutive: rely on neither;
//   - SYSDATE becomes now(): both the start of the transaction (Redshift's in UTC, without
//     a time zone, which a TIMESTAMPTZ column stores as UTC).
//
// Everything else must be valid on both as written: every other type (VARCHAR(n) counts
// characters on PostgreSQL and bytes on Redshift, so PostgreSQL accepts all Redshift does,
// not always the reverse), every constraint, every view, and the runner's own statements.
func RedshiftToPostgreSQL(statement string) string {
	for _, r := range redshiftRewrites {
		statement = r.pattern.ReplaceAllString(statement, r.replacement)
	}
	return statement
}
