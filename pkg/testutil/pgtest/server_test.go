package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A private server keeps its data and its port across a fast stop and across a kill, so
// connection strings handed to services stay valid.
func TestPrivateServerSurvivesStopRestartAndKill(t *testing.T) {
	srv := StartServer(t)
	url := srv.CreateDatabase(t, "faults")
	ctx := context.Background()

	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	count := func() int {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM kept").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := exec("CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)"); err != nil {
		t.Fatal(err)
	}

	srv.Stop(t)
	if err := exec("SELECT 1"); err == nil {
		t.Fatal("a stopped server still answers")
	}
	srv.Start(t)
	if got := count(); got != 1 {
		t.Fatalf("rows after stop and start = %d, want 1", got)
	}

	if err := exec("INSERT INTO kept VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	srv.Kill(t)
	srv.Start(t)
	if got := count(); got != 2 {
		t.Fatalf("rows after kill and start = %d, want 2 (committed rows survive a crash)", got)
	}

	srv.Restart(t)
	if got := count(); got != 2 {
		t.Fatalf("rows after restart = %d, want 2", got)
	}
}
