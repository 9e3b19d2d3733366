package pgtest_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
)

// databaseExists asks the base database whether name exists.
func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.BaseURL())
	if err != nil {
		t.Fatalf("connect to base database: %v", err)
	}
	defer func() {
		if err := conn.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatalf("look up database %s: %v", name, err)
	}
	return exists
}

func databaseName(t *testing.T, databaseURL string) string {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatalf("NewDatabase returned an unparsable URL %q: %v", databaseURL, err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

func TestNewDatabaseIsUsableEmptyAndDroppedAfterTheTest(t *testing.T) {
	var name string
	// A subtest, so its cleanups (the drop) run before we look again.
	t.Run("use", func(t *testing.T) {
		databaseURL := pgtest.NewDatabase(t)
		name = databaseName(t, databaseURL)
		if !strings.HasPrefix(name, pgtest.DatabasePrefix) {
			t.Errorf("database name %q does not start with %q", name, pgtest.DatabasePrefix)
		}

		ctx := t.Context()
		conn, err := pgx.Connect(ctx, databaseURL)
		if err != nil {
			t.Fatalf("connect to new database: %v", err)
		}
		// Left open on purpose: the drop must not be blocked by a connection
		// the test forgot to close (DROP DATABASE ... WITH (FORCE)).

		var current string
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&current); err != nil {
			t.Fatalf("current_database(): %v", err)
		}
		if current != name {
			t.Errorf("connected to %q, want %q", current, name)
		}

		var userTables int
		if err := conn.QueryRow(ctx,
			"SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
		).Scan(&userTables); err != nil {
			t.Fatalf("count tables: %v", err)
		}
		if userTables != 0 {
			t.Errorf("new database has %d user tables, want 0", userTables)
		}

		if _, err := conn.Exec(ctx, "CREATE TABLE batting (player text PRIMARY KEY, hits int NOT NULL)"); err != nil {
			t.Fatalf("create table: %v", err)
		}
		if _, err := conn.Exec(ctx, "INSERT INTO batting VALUES ('ruth', 3)"); err != nil {
			t.Fatalf("insert: %v", err)
		}
		var hits int
		if err := conn.QueryRow(ctx, "SELECT hits FROM batting WHERE player = 'ruth'").Scan(&hits); err != nil {
			t.Fatalf("select: %v", err)
		}
		if hits != 3 {
			t.Errorf("hits = %d, want 3", hits)
		}
		if !databaseExists(t, name) {
			t.Errorf("database %s is missing while the test runs", name)
		}
	})
	if name == "" {
		t.Fatal("subtest did not get a database")
	}
	if databaseExists(t, name) {
		t.Errorf("database %s still exists after its test finished", name)
	}
}

func TestNewDatabaseGivesEachTestItsOwnDatabase(t *testing.T) {
	first := pgtest.NewDatabase(t)
	second := pgtest.NewDatabase(t)
	if databaseName(t, first) == databaseName(t, second) {
		t.Fatalf("two calls returned the same database %s", first)
	}

	ctx := t.Context()
	firstConn, err := pgx.Connect(ctx, first)
	if err != nil {
		t.Fatalf("connect to first: %v", err)
	}
	defer firstConn.Close(context.Background())
	if _, err := firstConn.Exec(ctx, "CREATE TABLE only_in_first (id int)"); err != nil {
		t.Fatalf("create table: %v", err)
	}

	secondConn, err := pgx.Connect(ctx, second)
	if err != nil {
		t.Fatalf("connect to second: %v", err)
	}
	defer secondConn.Close(context.Background())
	_, err = secondConn.Exec(ctx, "SELECT * FROM only_in_first")
	if err == nil {
		t.Fatal("a table created in the first database is visible in the second")
	}
	if !strings.Contains(err.Error(), "42P01") { // undefined_table
		t.Errorf("querying the other database's table: got %v, want undefined_table (42P01)", err)
	}
}

func TestNewDatabaseWithKeywordValueBaseURL(t *testing.T) {
	t.Setenv(pgtest.BaseURLEnv, "host=127.0.0.1 port=5432 user=postgres dbname=postgres sslmode=disable")
	databaseURL := pgtest.NewDatabase(t)
	conn, err := pgx.Connect(t.Context(), databaseURL)
	if err != nil {
		t.Fatalf("connect to %q: %v", databaseURL, err)
	}
	defer conn.Close(context.Background())
	var current string
	if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&current); err != nil {
		t.Fatalf("current_database(): %v", err)
	}
	if !strings.HasPrefix(current, pgtest.DatabasePrefix) {
		t.Errorf("connected to %q, want a %s* database", current, pgtest.DatabasePrefix)
	}
}

// fatalRecorder records Fatalf instead of stopping the goroutine of a real
// test, to check the message NewDatabase fails with.
type fatalRecorder struct {
	testing.TB
	message string
}

// fatalCalled is what Fatalf panics with, to stop NewDatabase where testing.TB would.
type fatalCalled struct{}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.message = strings.TrimSpace(fmt.Sprintf(format, args...))
	panic(fatalCalled{})
}

func TestNewDatabaseFailsWithAHintWhenPostgreSQLIsUnreachable(t *testing.T) {
	// Port 1 on loopback: nothing listens there, the connection is refused at once.
	t.Setenv(pgtest.BaseURLEnv, "postgres://postgres:secret@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2")
	recorder := &fatalRecorder{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil && r != (fatalCalled{}) {
				panic(r)
			}
		}()
		pgtest.NewDatabase(recorder)
	}()
	if recorder.message == "" {
		t.Fatal("NewDatabase did not fail against a server that is not there")
	}
	for _, want := range []string{"cannot connect to PostgreSQL", ".ci/ensure-postgres.sh", pgtest.BaseURLEnv} {
		if !strings.Contains(recorder.message, want) {
			t.Errorf("failure message %q does not mention %q", recorder.message, want)
		}
	}
	if strings.Contains(recorder.message, "secret") {
		t.Errorf("failure message leaks the password: %q", recorder.message)
	}
}
