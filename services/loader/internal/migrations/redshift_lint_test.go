package migrations_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pressly/goose/v3"
)

// The Redshift migrations are checked here for what Redshift refuses or does differently
// from PostgreSQL: the PostgreSQL 15 that runs them in tests would accept most of it, so
// without this lint a PostgreSQL habit could pass every test and fail on the first real
// cluster. lintRedshiftSQL's rules are each proven to fire below.

// redshiftForbidden are patterns that must not appear in a Redshift migration (comments and
// string literals removed first), with why.
var redshiftForbidden = []struct {
	pattern *regexp.Regexp
	why     string
}{
	{regexp.MustCompile(`(?i)\bCREATE\s+(UNIQUE\s+)?INDEX\b`), "Redshift has no indexes (sort keys instead)"},
	{regexp.MustCompile(`(?i)\bON\s+CONFLICT\b`), "Redshift has no ON CONFLICT (MERGE or INSERT ... WHERE NOT EXISTS)"},
	{regexp.MustCompile(`(?i)\bRETURNING\b`), "Redshift has no RETURNING"},
	{regexp.MustCompile(`(?i)\b(SMALL|BIG)?SERIAL\b`), "Redshift has no SERIAL (IDENTITY(seed, step))"},
	{regexp.MustCompile(`(?i)\bGENERATED\s+(ALWAYS|BY\s+DEFAULT)\s+AS\s+IDENTITY\b`), "write IDENTITY(seed, step): redshifttest rewrites that form only"},
	{regexp.MustCompile(`(?i)\bnextval\s*\(`), "Redshift has no sequences"},
	{regexp.MustCompile(`(?i)\bJSONB?\b`), "Redshift has no JSON/JSONB type (SUPER)"},
	{regexp.MustCompile(`(?i)\bBYTEA\b`), "Redshift has no bytea (VARBYTE(n))"},
	{regexp.MustCompile(`(?i)\bTEXT\b`), "Redshift's TEXT is VARCHAR(256): spell VARCHAR(n) with the byte length"},
	{regexp.MustCompile(`(?i)\b(VARCHAR|CHARACTER\s+VARYING|NVARCHAR)\b\s*(?:[^\s(]|$)`), "spell VARCHAR's byte length: VARCHAR(n) (without it Redshift means 256)"},
	{regexp.MustCompile(`(?i)\bVARBYTE\b\s*(?:[^\s(]|$)`), "spell VARBYTE's length: VARBYTE(n) (without it Redshift means 64,000)"},
	{regexp.MustCompile(`(?i)\b(UUID|INET|CIDR|INTERVAL|MONEY|SERIAL|XML|TSVECTOR)\b`), "a PostgreSQL type Redshift lacks"},
	{regexp.MustCompile(`(?i)\[\]|\bARRAY\s*\[`), "Redshift has no array types"},
	{regexp.MustCompile(`::`), "write CAST(x AS t): the :: cast is not portable to every Redshift context"},
	{regexp.MustCompile(`(?i)\b(now\s*\(|CURRENT_TIMESTAMP|LOCALTIMESTAMP|CURRENT_TIME\b|transaction_timestamp|statement_timestamp|clock_timestamp)`), "leader-node-only or missing on Redshift: use SYSDATE or GETDATE()"},
	{regexp.MustCompile(`(?i)\bCHECK\s*\(`), "Redshift has no CHECK constraints"},
	{regexp.MustCompile(`(?i)\b(PRIMARY\s+KEY|UNIQUE|REFERENCES|FOREIGN\s+KEY)\b`), "Redshift enforces no key: the loader keeps keys itself, and none is declared so that no test on PostgreSQL leans on one"},
	{regexp.MustCompile(`(?i)\bEXCLUDE\s+USING\b|\bUSING\s+(GIN|GIST|BRIN|HASH)\b`), "PostgreSQL-only"},
	{regexp.MustCompile(`(?i)\bCOLLATE\b`), "Redshift compares VARCHAR byte-wise already and knows no \"C\" collation"},
	{regexp.MustCompile(`(?i)\bFILTER\s*\(\s*WHERE\b`), "Redshift has no aggregate FILTER clause (SUM(CASE WHEN ...))"},
	{regexp.MustCompile(`(?i)\bDISTINCT\s+ON\b`), "Redshift has no DISTINCT ON (ROW_NUMBER() = 1)"},
	{regexp.MustCompile(`(?i)\bLATERAL\b`), "Redshift has no LATERAL joins"},
	{regexp.MustCompile(`(?i)\bgenerate_series\b`), "generate_series runs on Redshift's leader node only, never with a table"},
	{regexp.MustCompile(`(?i)\bRANGE\s+BETWEEN\b|\bGROUPS\s+BETWEEN\b`), "Redshift window frames are ROWS only"},
	{regexp.MustCompile(`(?i)\bWINDOW\s+\w+\s+AS\b`), "Redshift has no named WINDOW clause"},
	{regexp.MustCompile(`(?i)\bCREATE\s+(OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE|TRIGGER|EXTENSION|TYPE|DOMAIN|SEQUENCE)\b`), "keep the warehouse to tables and views"},
	{regexp.MustCompile(`(?i)\bCREATE\s+MATERIALIZED\s+VIEW\b`), "materialized views differ between the engines"},
	{regexp.MustCompile(`(?i)\bIF\s+NOT\s+EXISTS\b.*\bADD\s+COLUMN\b|\bADD\s+COLUMN\s+IF\s+NOT\s+EXISTS\b`), "Redshift has no ADD COLUMN IF NOT EXISTS"},
	{regexp.MustCompile(`(?i)\bDROP\s+COLUMN\s+IF\s+EXISTS\b`), "Redshift has no DROP COLUMN IF EXISTS"},
}

var (
	lineComment    = regexp.MustCompile(`--[^\n]*`)
	stringLiteral  = regexp.MustCompile(`'(?:[^']|'')*'`)
	rewriteKeyword = regexp.MustCompile(`(?i)\b(DISTSTYLE|DISTKEY|SORTKEY|ENCODE|VARBYTE|IDENTITY|SYSDATE)\b`)
	alterTable     = regexp.MustCompile(`(?is)\bALTER\s+TABLE\b[^;]*`)
	addColumn      = regexp.MustCompile(`(?i)\bADD\s+(COLUMN\b|[a-z_][a-z0-9_]*\s+[a-z])`)
	alterType      = regexp.MustCompile(`(?i)\bALTER\s+COLUMN\s+\w+\s+TYPE\b`)
	createTable    = regexp.MustCompile(`(?is)\bCREATE\s+(TEMP\w*\s+)?TABLE\b[^;]*`)
	placement      = regexp.MustCompile(`(?i)\b(DISTSTYLE\s+(ALL|EVEN|AUTO|KEY)|DISTKEY\s*\()`)
	windowedAgg    = regexp.MustCompile(`(?i)\b(SUM|COUNT|AVG|MIN|MAX|STDDEV\w*|VARIANCE|VAR_\w+|LISTAGG|MEDIAN)\s*\([^()]*\)\s*OVER\s*\(([^()]*)\)`)
	orderBy        = regexp.MustCompile(`(?i)\bORDER\s+BY\b`)
	rowsFrame      = regexp.MustCompile(`(?i)\bROWS\s+(BETWEEN|UNBOUNDED|\d+|CURRENT)\b`)
	noTransaction  = regexp.MustCompile(`(?m)^-- \+goose NO TRANSACTION\s*$`)
	columnName     = regexp.MustCompile(`(?im)^\s*([a-z_][a-z0-9_]*)\s+(BIGINT|INTEGER|INT[248]?|SMALLINT|DECIMAL|NUMERIC|REAL|DOUBLE|FLOAT[48]?|BOOL(EAN)?|N?VARCHAR|CHAR(ACTER)?|BPCHAR|TEXT|DATE|TIME(STAMP)?(TZ)?|VARBYTE|SUPER|GEOMETRY|GEOGRAPHY|HLLSKETCH)\b`)
	aliasName      = regexp.MustCompile(`(?im)\bAS\s+([a-z_][a-z0-9_]*)\s*(,|$)`)
)

// redshiftReserved are Amazon Redshift's reserved words (its SQL reference, "Reserved
// words"): a column or an alias must not be one, or every query naming it must quote it.
var redshiftReserved = strings.Fields(`AES128 AES256 ALL ALLOWOVERWRITE ANALYSE ANALYZE AND ANY ARRAY AS ASC
AUTHORIZATION AZ64 BACKUP BETWEEN BINARY BLANKSASNULL BOTH BYTEDICT BZIP2 CASE CAST CHECK COLLATE COLUMN
CONSTRAINT CREATE CREDENTIALS CROSS CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER CURRENT_USER_ID
DEFAULT DEFERRABLE DEFLATE DEFRAG DELTA DELTA32K DESC DISABLE DISTINCT DO ELSE EMPTYASNULL ENABLE ENCODE
ENCRYPT ENCRYPTION END EXCEPT EXPLICIT FALSE FOR FOREIGN FREEZE FROM FULL GLOBALDICT256 GLOBALDICT64K GRANT
GROUP GZIP HAVING IDENTITY IGNORE ILIKE IN INITIALLY INNER INTERSECT INTERVAL INTO IS ISNULL JOIN LEADING
LEFT LIKE LIMIT LOCALTIME LOCALTIMESTAMP LUN LUNS LZO LZOP MINUS MOSTLY16 MOSTLY32 MOSTLY8 NATURAL NEW NOT
NOTNULL NULL NULLS OFF OFFLINE OFFSET OID OLD ON ONLY OPEN OR ORDER OUTER OVERLAPS PARALLEL PARTITION
PERCENT PERMISSIONS PIVOT PLACING PRIMARY RAW READRATIO RECOVER REFERENCES REJECTLOG RESORT RESPECT RESTORE
RIGHT SELECT SESSION_USER SIMILAR SNAPSHOT SOME SYSDATE SYSTEM TABLE TAG TDES TEXT255 TEXT32K THEN TIMESTAMP
TO TOP TRAILING TRUE TRUNCATECOLUMNS UNION UNIQUE UNNEST UNPIVOT USER USING VERBOSE WALLET WHEN WHERE WITH
WITHOUT`)

// lintRedshiftSQL returns what is wrong with one Redshift migration file.
func lintRedshiftSQL(text string) []string {
	var problems []string
	if !strings.Contains(text, "-- +goose Up") || !strings.Contains(text, "-- +goose Down") {
		problems = append(problems, "a goose migration needs -- +goose Up and -- +goose Down")
	}
	hasNoTransaction := noTransaction.MatchString(text)
	code := lineComment.ReplaceAllString(text, "")
	// RedshiftToPostgreSQL rewrites text, not syntax: a literal that spells one of its
	// keywords would be changed on PostgreSQL and not on Redshift.
	for _, literal := range stringLiteral.FindAllString(code, -1) {
		if rewriteKeyword.MatchString(literal) {
			problems = append(problems, fmt.Sprintf("string literal %s spells a keyword the PostgreSQL rewrite changes", literal))
		}
	}
	code = stringLiteral.ReplaceAllString(code, "''")
	for _, rule := range redshiftForbidden {
		if m := rule.pattern.FindString(code); m != "" {
			problems = append(problems, fmt.Sprintf("%q: %s", strings.TrimSpace(m), rule.why))
		}
	}
	for _, statement := range alterTable.FindAllString(code, -1) {
		if n := len(addColumn.FindAllString(statement, -1)); n > 1 {
			problems = append(problems, fmt.Sprintf("ALTER TABLE adds %d columns: Redshift takes one column per ALTER TABLE ADD COLUMN", n))
		}
		if alterType.MatchString(statement) && !hasNoTransaction {
			problems = append(problems, "ALTER COLUMN ... TYPE cannot run in a transaction block on Redshift: mark the file -- +goose NO TRANSACTION")
		}
	}
	for _, statement := range createTable.FindAllString(code, -1) {
		if !placement.MatchString(statement) {
			problems = append(problems, "CREATE TABLE without DISTSTYLE or DISTKEY: say where the rows go")
		}
	}
	for _, statement := range createTable.FindAllString(code, -1) {
		for _, m := range columnName.FindAllStringSubmatch(statement, -1) {
			if slices.Contains(redshiftReserved, strings.ToUpper(m[1])) {
				problems = append(problems, fmt.Sprintf("column %s is a Redshift reserved word", m[1]))
			}
		}
	}
	for _, m := range aliasName.FindAllStringSubmatch(code, -1) {
		if slices.Contains(redshiftReserved, strings.ToUpper(m[1])) {
			problems = append(problems, fmt.Sprintf("alias %s is a Redshift reserved word", m[1]))
		}
	}
	for _, m := range windowedAgg.FindAllStringSubmatch(code, -1) {
		if orderBy.MatchString(m[2]) && !rowsFrame.MatchString(m[2]) {
			problems = append(problems, fmt.Sprintf("%s OVER (%s): Redshift requires a ROWS frame on an ordered aggregate", m[1], strings.Join(strings.Fields(m[2]), " ")))
		}
	}
	return problems
}

func TestRedshiftMigrationsPassTheLint(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("redshift", "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("redshift/*.sql: %v files, %v", len(files), err)
	}
	for i, file := range files {
		version, err := goose.NumericComponent(filepath.Base(file))
		if err != nil || version != int64(i+1) {
			t.Errorf("%s: version %d (%v), want %d: versions are consecutive from 1", file, version, err, i+1)
		}
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, problem := range lintRedshiftSQL(string(text)) {
			t.Errorf("%s: %s", file, problem)
		}
	}
}

func TestRedshiftLintCatches(t *testing.T) {
	t.Parallel()
	const up, down = "-- +goose Up\n", "\n-- +goose Down\nDROP TABLE t;\n"
	table := func(columns string) string {
		return up + "CREATE TABLE t (\n" + columns + "\n) DISTSTYLE EVEN;" + down
	}
	for _, tc := range []struct{ name, sql, want string }{
		{"index", up + "CREATE INDEX i ON t (a);" + down, "no indexes"},
		{"partial unique index", up + "CREATE UNIQUE INDEX i ON t (a) WHERE a IS NOT NULL;" + down, "no indexes"},
		{"two columns in one ALTER", up + "ALTER TABLE t\n  ADD COLUMN a BIGINT NULL,\n  ADD COLUMN b BIGINT NULL;" + down, "one column per ALTER TABLE"},
		{"two columns, COLUMN omitted", up + "ALTER TABLE t ADD a BIGINT, ADD b BIGINT;" + down, "one column per ALTER TABLE"},
		{"type change in a transaction", up + "ALTER TABLE t ALTER COLUMN a TYPE VARCHAR(512);" + down, "NO TRANSACTION"},
		{"on conflict", up + "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING;" + down, "ON CONFLICT"},
		{"serial", table("id bigserial NOT NULL"), "SERIAL"},
		{"jsonb", table("doc JSONB NULL"), "JSON"},
		{"text", table("name text NOT NULL"), "VARCHAR(256)"},
		{"varchar without length", table("name VARCHAR NOT NULL"), "byte length"},
		{"varchar at the end", table("name VARCHAR"), "byte length"},
		{"bytea", table("payload bytea"), "VARBYTE"},
		{"varbyte without length", table("payload VARBYTE NULL"), "VARBYTE's length"},
		{"now", table("at TIMESTAMPTZ DEFAULT now()"), "SYSDATE"},
		{"check", table("n INTEGER CHECK (n >= 0)"), "CHECK"},
		{"primary key", table("id BIGINT PRIMARY KEY"), "no key"},
		{"unique", table("id BIGINT, UNIQUE (id)"), "no key"},
		{"cast", up + "CREATE VIEW v AS SELECT a::text FROM t;" + down, "CAST"},
		{"filter", up + "CREATE VIEW v AS SELECT count(*) FILTER (WHERE a > 0) FROM t;" + down, "FILTER"},
		{"distinct on", up + "CREATE VIEW v AS SELECT DISTINCT ON (a) a FROM t;" + down, "DISTINCT ON"},
		{"lateral", up + "CREATE VIEW v AS SELECT * FROM t, LATERAL (SELECT 1) x;" + down, "LATERAL"},
		{"generate_series", up + "CREATE VIEW v AS SELECT * FROM generate_series(1, 3);" + down, "leader node"},
		{"range frame", up + "CREATE VIEW v AS SELECT SUM(a) OVER (ORDER BY d RANGE BETWEEN INTERVAL '7 days' PRECEDING AND CURRENT ROW) FROM t;" + down, "ROWS only"},
		{"ordered aggregate without frame", up + "CREATE VIEW v AS SELECT SUM(a) OVER (PARTITION BY p ORDER BY d) FROM t;" + down, "requires a ROWS frame"},
		{"named window", up + "CREATE VIEW v AS SELECT SUM(a) OVER w FROM t WINDOW w AS (ORDER BY d);" + down, "WINDOW"},
		{"collate", up + "CREATE VIEW v AS SELECT a FROM t ORDER BY a COLLATE \"C\";" + down, "byte-wise"},
		{"no placement", up + "CREATE TABLE t (a BIGINT);" + down, "DISTSTYLE or DISTKEY"},
		{"rewritten keyword in a literal", table("note VARCHAR(16) DEFAULT 'SYSDATE'"), "string literal"},
		{"reserved column", table("offset BIGINT NOT NULL,\n  tag VARCHAR(8)"), "column offset is a Redshift reserved word"},
		{"reserved alias", up + "CREATE VIEW v AS SELECT a AS partition,\n b AS open\nFROM t;" + down, "alias partition is a Redshift reserved word"},
		{"no down", "-- +goose Up\nCREATE VIEW v AS SELECT 1;\n", "+goose Down"},
	} {
		problems := lintRedshiftSQL(tc.sql)
		if !strings.Contains(strings.Join(problems, "\n"), tc.want) {
			t.Errorf("%s: lint = %q, want a problem saying %q", tc.name, problems, tc.want)
		}
	}
	ok := up + "-- a comment may say ON CONFLICT, text and now()\nCREATE TABLE t (\n  id BIGINT IDENTITY(1, 1) NOT NULL,\n  note VARCHAR(16) NOT NULL DEFAULT 'it''s',\n  at TIMESTAMPTZ NOT NULL DEFAULT SYSDATE\n) DISTKEY (id) SORTKEY (at);\nALTER TABLE t ADD COLUMN b BIGINT NULL;\nCREATE VIEW v AS SELECT SUM(id) OVER (PARTITION BY note ORDER BY at ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS s, CAST(id AS VARCHAR(20)) AS c FROM t;" + down
	if problems := lintRedshiftSQL(ok); len(problems) != 0 {
		t.Errorf("lint of a valid migration = %q, want nothing", problems)
	}
}
