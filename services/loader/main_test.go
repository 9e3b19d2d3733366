package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/server"
	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var cfg config
	var stdout, stderr bytes.Buffer
	// A loader that passes its checks serves for a moment, then stops (exit 0).
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	code := server.Run(ctx, newSpec(&cfg), &cfg, func(ctx context.Context, svc *server.Service) error {
		return setup(ctx, svc, &cfg)
	}, append(args, "--log-level", "error", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--drain-delay", "0s"), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// `loader migrate` applies the schema and reports its version (twice: idempotent); a loader
// started without --migrate serves on that schema, and refuses an older or a newer one,
// naming both versions and what to do.
func TestMigrateSubcommandAndTheCheckAtStart(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	latest, err := migrations.Latest()
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "--no-migrate", "--database-url", db)
	if want := fmt.Sprintf("is at version 0, this loader needs version %d: run `loader migrate`", latest); code != server.ExitFailed || !strings.Contains(stderr, want) {
		t.Fatalf("start on an empty database: exit %d, stderr %q; want 1 and %q", code, stderr, want)
	}
	for range 2 {
		code, stdout, stderr := run(t, "migrate", "--database-url", db)
		if want := fmt.Sprintf("loader schema \"boxscore\" at version %d\n", latest); code != server.ExitOK || stdout != want {
			t.Fatalf("migrate: exit %d, stdout %q (want %q), stderr %q", code, stdout, want, stderr)
		}
	}
	if code, _, stderr := run(t, "--no-migrate", "--database-url", db); code != server.ExitOK {
		t.Fatalf("start on the migrated schema: exit %d, stderr %q", code, stderr)
	}
	pool, err := pgxpool.New(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(t.Context(), `INSERT INTO boxscore.goose_db_version (version_id, is_applied) VALUES ($1, true)`, latest+1); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = run(t, "--database-url", db) // --migrate (the default) does not help
	if want := fmt.Sprintf("up to version %d, the database is at version %d: upgrade the loader", latest, latest+1); code != server.ExitFailed || !strings.Contains(stderr, want) {
		t.Fatalf("start on a newer schema: exit %d, stderr %q; want 1 and %q", code, stderr, want)
	}
}
