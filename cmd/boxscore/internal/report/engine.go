package report

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/boxscore-dev/boxscore/pkg/seasonview"
)

// The warehouse engines the report reads from (--warehouse-engine, as the loader spells
// them), and auto: ask the server.
const (
	engineAuto       = "auto"
	enginePostgreSQL = "postgresql"
	engineRedshift   = "redshift"
)

// connection is the warehouse connection the report reads through: db is what
// pkg/seasonview queries, engine the engine it was opened for.
type connection struct {
	conn   *pgx.Conn
	db     seasonview.Querier
	engine string
}

// connect opens the warehouse connection for engine (auto, postgresql or redshift). On
// Redshift every query goes through the simple protocol (no prepared statement, no type
// introspection) with its arguments written into the text as literals: pgx substitutes
// arguments itself in the simple protocol only when the server reports
// standard_conforming_strings=on and client_encoding=UTF8, which Redshift (8.0-based,
// reporting UNICODE) does not. auto asks the server with SELECT version(), which names
// Redshift on Redshift and Redshift Serverless; the question itself is sent in the simple
// protocol, valid on both.
func connect(ctx context.Context, databaseURL, engine string, tracer pgx.QueryTracer) (*connection, error) {
	config, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("report: warehouse URL: %w", err)
	}
	switch engine {
	case engineRedshift:
		config.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	case engineAuto, enginePostgreSQL:
	default:
		return nil, fmt.Errorf("report: warehouse engine %q: want %s, %s or %s", engine, engineAuto, enginePostgreSQL, engineRedshift)
	}
	if tracer != nil {
		config.Tracer = tracer
	}
	conn, err := pgx.ConnectConfig(ctx, config)
	if err != nil {
		return nil, fmt.Errorf("report: connect to the warehouse: %w", err)
	}
	if engine == engineAuto {
		var version string
		if err := conn.QueryRow(ctx, "SELECT version()", pgx.QueryExecModeSimpleProtocol).Scan(&version); err != nil {
			return nil, errors.Join(fmt.Errorf("report: ask the warehouse its version: %w", err), conn.Close(context.WithoutCancel(ctx)))
		}
		engine = engineOf(version)
	}
	c := &connection{conn: conn, db: conn, engine: engine}
	if engine == engineRedshift {
		c.db = simpleQuerier{conn: conn}
	}
	return c, nil
}

// engineOf tells the engine from the text of SELECT version(): Redshift's is "PostgreSQL
// 8.0.2 on i686-pc-linux-gnu, compiled by GCC ... Redshift 1.0.<build>".
func engineOf(version string) string {
	if strings.Contains(version, "Redshift") {
		return engineRedshift
	}
	return enginePostgreSQL
}

// simpleQuerier sends every query through the simple protocol, its arguments inlined.
type simpleQuerier struct{ conn *pgx.Conn }

func (q simpleQuerier) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	query, err := inlineArgs(sql, args)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	return q.conn.Query(ctx, query, pgx.QueryExecModeSimpleProtocol)
}

// inlineArgs replaces the placeholders $1..$n of query, outside quoted identifiers and
// string literals, by args written as SQL literals. The report binds integers (a season,
// player ids), dates (a date range) and a team abbreviation; only those are accepted: an
// integer, a time.Time (written 'YYYY-MM-DD'), and a string of letters and digits, so no
// literal ever needs an escape (Redshift reads backslashes in literals as escapes,
// PostgreSQL does not).
func inlineArgs(query string, args []any) (string, error) {
	literals := make([]string, len(args))
	for i, arg := range args {
		switch v := arg.(type) {
		case int:
			literals[i] = strconv.Itoa(v)
		case int32:
			literals[i] = strconv.FormatInt(int64(v), 10)
		case int64:
			literals[i] = strconv.FormatInt(v, 10)
		case time.Time:
			literals[i] = "'" + v.Format(time.DateOnly) + "'"
		case string:
			if !plainWord.MatchString(v) {
				return "", fmt.Errorf("argument %d %q: only integers, dates and words of letters and digits are written into Redshift queries", i+1, v)
			}
			literals[i] = "'" + v + "'"
		default:
			return "", fmt.Errorf("argument %d of type %T: only integers, dates and words of letters and digits are written into Redshift queries", i+1, arg)
		}
	}
	var b strings.Builder
	for i := 0; i < len(query); i++ {
		switch ch := query[i]; ch {
		case '\'', '"':
			end := closingQuote(query, i)
			if end < 0 {
				return "", fmt.Errorf("unterminated %c in %q", ch, query)
			}
			b.WriteString(query[i : end+1])
			i = end
		case '$':
			j := i + 1
			for j < len(query) && query[j] >= '0' && query[j] <= '9' {
				j++
			}
			n, err := strconv.Atoi(query[i+1 : j])
			if err != nil || n < 1 || n > len(args) {
				return "", fmt.Errorf("placeholder %q with %d arguments in %q", query[i:j], len(args), query)
			}
			b.WriteString(literals[n-1])
			i = j - 1
		default:
			b.WriteByte(ch)
		}
	}
	return b.String(), nil
}

// plainWord is a string written into a Redshift query as a literal as it is.
var plainWord = regexp.MustCompile(`^[A-Za-z0-9]*$`)

// closingQuote returns the index of the quote that closes the one at start (a doubled quote
// is part of the text), or -1.
func closingQuote(s string, start int) int {
	quote := s[start]
	for i := start + 1; i < len(s); i++ {
		if s[i] != quote {
			continue
		}
		if i+1 < len(s) && s[i+1] == quote {
			i++
			continue
		}
		return i
	}
	return -1
}
