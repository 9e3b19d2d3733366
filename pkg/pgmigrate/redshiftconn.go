package pgmigrate

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/stdlib"
)

// redshiftConnector opens the connections of the Redshift runner's database/sql pool. Its
// connections send every statement through the simple protocol with no bound argument:
// pgx's simple protocol substitutes arguments itself only when the server reports
// standard_conforming_strings=on and client_encoding=UTF8, which Redshift (8.0-based) does
// not promise. So the arguments goose binds (a version, a flag) become literals here, and
// then the optional rewrite (tests on PostgreSQL) applies to the final text.
type redshiftConnector struct {
	base    driver.Connector
	rewrite func(string) string
}

func (c *redshiftConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(*stdlib.Conn)
	if !ok {
		_ = conn.Close() // not usable either way; the type error says why
		return nil, fmt.Errorf("redshift runner: driver connection of type %T, want *stdlib.Conn", conn)
	}
	return &redshiftConn{Conn: sc, rewrite: c.rewrite}, nil
}

func (c *redshiftConnector) Driver() driver.Driver { return c.base.Driver() }

// redshiftConn is a pgx stdlib connection whose statements are made final (literals in,
// rewrite applied) before they are sent. Prepared statements are refused: nothing the
// runner sends needs one, and Redshift's protocol support for them is not relied on.
type redshiftConn struct {
	*stdlib.Conn
	rewrite func(string) string
}

func (c *redshiftConn) final(query string, args []driver.NamedValue) (string, error) {
	if len(args) > 0 {
		var err error
		if query, err = inlineArgs(query, args); err != nil {
			return "", err
		}
	}
	if c.rewrite != nil {
		query = c.rewrite(query)
	}
	return query, nil
}

func (c *redshiftConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	query, err := c.final(query, args)
	if err != nil {
		return nil, err
	}
	return c.Conn.ExecContext(ctx, query, nil)
}

func (c *redshiftConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	query, err := c.final(query, args)
	if err != nil {
		return nil, err
	}
	return c.Conn.QueryContext(ctx, query, nil)
}

func (c *redshiftConn) Prepare(query string) (driver.Stmt, error) {
	return nil, fmt.Errorf("redshift runner: prepared statements are not used (%.40q)", query)
}

func (c *redshiftConn) PrepareContext(_ context.Context, query string) (driver.Stmt, error) {
	return c.Prepare(query)
}

// inlineArgs replaces the placeholders $1..$n of query by args as literals. The runner's
// statements with arguments are goose's own (INSERT INTO t (version_id, is_applied) VALUES
// ($1, $2) and the like), without quoted text that could hold a '$'.
func inlineArgs(query string, args []driver.NamedValue) (string, error) {
	if strings.ContainsAny(query, `'"`) {
		return "", fmt.Errorf("redshift runner: cannot inline arguments into a statement with quotes: %q", query)
	}
	var b strings.Builder
	for i := 0; i < len(query); i++ {
		if query[i] != '$' {
			b.WriteByte(query[i])
			continue
		}
		j := i + 1
		for j < len(query) && query[j] >= '0' && query[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(query[i+1 : j])
		if err != nil || n < 1 || n > len(args) {
			return "", fmt.Errorf("redshift runner: placeholder %q of %d arguments in %q", query[i:j], len(args), query)
		}
		literal, err := formatLiteral(args[n-1].Value)
		if err != nil {
			return "", err
		}
		b.WriteString(literal)
		i = j - 1
	}
	return b.String(), nil
}
