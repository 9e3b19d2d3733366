// Package pgtest gives each test its own empty PostgreSQL database on the
// real server, so SQL tests run against PostgreSQL itself and never see each
// other's tables.
//
// The server is the one at BaseURLEnv, by default the machine's PostgreSQL
// on 127.0.0.1:5432 with user postgres and trust auth. .ci/ensure-postgres.sh
// starts it (and installs it if needed).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// BaseURLEnv names the environment variable holding the connection
	// string of a database on the server to use (any database that a user
	// allowed to CREATE DATABASE can connect to).
	BaseURLEnv = "BOXSCORE_TEST_POSTGRES_URL"
	// DefaultBaseURL is used when BaseURLEnv is unset or empty.
	DefaultBaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

	// DatabasePrefix starts the name of every database NewDatabase creates,
	// so leftovers from killed test runs are easy to find and drop.
	DatabasePrefix = "boxscore_test_"

	// adminTimeout bounds connecting and CREATE/DROP DATABASE: a server
	// that does not answer should fail the test quickly, not hang it.
	adminTimeout = 15 * time.Second
)

// BaseURL returns the connection string NewDatabase derives its databases
// from: $BOXSCORE_TEST_POSTGRES_URL or DefaultBaseURL.
func BaseURL() string {
	if base := os.Getenv(BaseURLEnv); base != "" {
		return base
	}
	return DefaultBaseURL
}

// NewDatabase creates a new, empty database for this test and returns its
// connection string. The database is dropped (WITH (FORCE), so connections
// the test left open do not block it) when the test and its subtests finish.
//
// It fails the test, never skips it, when PostgreSQL cannot be reached.
func NewDatabase(t testing.TB) string {
	t.Helper()

	base := BaseURL()
	name, err := newDatabaseName()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	databaseURL, err := withDatabase(base, name)
	if err != nil {
		t.Fatalf("pgtest: %s=%q: %v", BaseURLEnv, base, err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), adminTimeout)
	defer cancel()
	if err := execAdmin(ctx, base, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}

	t.Cleanup(func() {
		// t.Context() is already canceled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		defer cancel()
		if err := execAdmin(ctx, base, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return databaseURL
}

// execAdmin runs one statement on its own short-lived connection to the base
// database. CREATE/DROP DATABASE cannot run in a transaction, so no pool.
func execAdmin(ctx context.Context, base, statement string) error {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return fmt.Errorf("cannot connect to PostgreSQL at %s: %w\n"+
			"Is it running? Start it with .ci/ensure-postgres.sh (or point %s at a server)",
			redact(base), err, BaseURLEnv)
	}
	_, execErr := conn.Exec(ctx, statement)
	closeErr := conn.Close(context.WithoutCancel(ctx))
	if execErr != nil {
		return execErr
	}
	if closeErr != nil {
		return fmt.Errorf("close admin connection: %w", closeErr)
	}
	return nil
}

// newDatabaseName returns DatabasePrefix and 12 random hex digits: lower
// case, so it needs no quoting in psql, and far below the 63-byte limit.
func newDatabaseName() (string, error) {
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", fmt.Errorf("random database name: %w", err)
	}
	return DatabasePrefix + hex.EncodeToString(suffix[:]), nil
}

// withDatabase returns base with its database replaced by name. base may be
// a URL (postgres://...) or a keyword/value string (host=... user=...).
func withDatabase(base, name string) (string, error) {
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err != nil {
			return "", fmt.Errorf("parse connection URL: %w", err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	if _, err := pgx.ParseConfig(base); err != nil {
		return "", fmt.Errorf("parse connection string: %w", err)
	}
	// In a keyword/value string the last dbname wins.
	return base + " dbname=" + name, nil
}

// keywordPassword matches the password in a keyword/value connection
// string, quoted or not.
var keywordPassword = regexp.MustCompile(`password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// redact hides the password of a connection string for error messages.
func redact(connString string) string {
	if !strings.HasPrefix(connString, "postgres://") && !strings.HasPrefix(connString, "postgresql://") {
		return keywordPassword.ReplaceAllString(connString, "password=xxxxx")
	}
	u, err := url.Parse(connString)
	if err != nil {
		return "(unparsable connection URL)"
	}
	if u.User != nil {
		if _, hasPassword := u.User.Password(); hasPassword {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}
