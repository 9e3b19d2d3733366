package pgmigrate

import (
	"database/sql/driver"
	"strings"
	"testing"
)

func TestInlineArgsWritesGooseArgumentsAsLiterals(t *testing.T) {
	t.Parallel()
	got, err := inlineArgs(`INSERT INTO s.goose_db_version (version_id, is_applied) VALUES ($1, $2)`,
		[]driver.NamedValue{{Ordinal: 1, Value: int64(12)}, {Ordinal: 2, Value: true}})
	if want := `INSERT INTO s.goose_db_version (version_id, is_applied) VALUES (12, true)`; err != nil || got != want {
		t.Fatalf("inlineArgs = %q, %v; want %q", got, err, want)
	}
	got, err = inlineArgs(`DELETE FROM t WHERE version_id=$1 OR version_id=$10`,
		[]driver.NamedValue{{Value: int64(-3)}, {Value: int64(0)}, {Value: int64(0)}, {Value: int64(0)}, {Value: int64(0)},
			{Value: int64(0)}, {Value: int64(0)}, {Value: int64(0)}, {Value: int64(0)}, {Value: false}})
	if want := `DELETE FROM t WHERE version_id=-3 OR version_id=false`; err != nil || got != want {
		t.Fatalf("inlineArgs with $10 = %q, %v; want %q", got, err, want)
	}
	for _, tc := range []struct {
		query string
		args  []driver.NamedValue
		want  string
	}{
		{`SELECT $1`, []driver.NamedValue{{Value: "x'; DROP TABLE t; --"}}, "writes only integers and booleans"},
		{`SELECT $2`, []driver.NamedValue{{Value: int64(1)}}, "placeholder"},
		{`SELECT $`, []driver.NamedValue{{Value: int64(1)}}, "placeholder"},
		{`SELECT '$1'`, []driver.NamedValue{{Value: int64(1)}}, "quotes"},
	} {
		if got, err := inlineArgs(tc.query, tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("inlineArgs(%q) = %q, %v; want an error saying %q", tc.query, got, err, tc.want)
		}
	}
}

func TestRedshiftToPostgreSQLChangesOnlyTheListedClauses(t *testing.T) {
	t.Parallel()
	redshift := `CREATE TABLE t (
    id      BIGINT IDENTITY(1, 1) NOT NULL,
    body    VARBYTE(1048576) NULL ENCODE zstd,
    raw     varbyte,
    note    VARCHAR(256) NOT NULL DEFAULT '',
    at      TIMESTAMPTZ NOT NULL DEFAULT sysdate
)
DISTSTYLE EVEN
DISTKEY (id)
COMPOUND SORTKEY (at, id);`
	want := `CREATE TABLE t (
    id      BIGINT GENERATED ALWAYS AS IDENTITY (START WITH 1 INCREMENT BY 1) NOT NULL,
    body    bytea NULL,
    raw     bytea,
    note    VARCHAR(256) NOT NULL DEFAULT '',
    at      TIMESTAMPTZ NOT NULL DEFAULT now()
);`
	if got := RedshiftToPostgreSQL(redshift); got != want {
		t.Errorf("RedshiftToPostgreSQL =\n%s\nwant\n%s", got, want)
	}
	for _, unchanged := range []string{
		"SELECT player_id, SUM(hits) OVER (PARTITION BY player_id ORDER BY game_date ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) FROM f",
		"LOCK TABLE s.goose_lock",
		"CREATE SCHEMA IF NOT EXISTS s",
		"SELECT identity_card, sysdates, distkeys FROM t",
	} {
		if got := RedshiftToPostgreSQL(unchanged); got != unchanged {
			t.Errorf("RedshiftToPostgreSQL(%q) = %q, want it unchanged", unchanged, got)
		}
	}
}
