package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/server"
	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/config"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/lease"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var cfg config.Config
	s := spec
	s.Tasks = []server.Task{lease.Schema.Task(&cfg.LeaseDatabaseURL, &cfg.LeaseSchema, cfg.LeaseDatabaseOptions)}
	var stdout, stderr bytes.Buffer
	code := server.Run(t.Context(), s, &cfg, func(ctx context.Context, svc *server.Service) error {
		return setup(ctx, svc, &cfg)
	}, append(args, "--log-level", "error", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// `shard-consumer migrate` applies the lease schema and reports its version; a consumer
// started without --migrate refuses an unmigrated lease store, naming the step to run.
func TestMigrateSubcommandAndTheCheckAtStart(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	code, _, stderr := run(t, "--no-migrate", "--lease-database-url", db)
	if code != server.ExitFailed || !strings.Contains(stderr, "is at version 0, this shard-consumer needs version 1: run `shard-consumer migrate`") {
		t.Fatalf("start on an unmigrated lease store: exit %d, stderr %q; want 1 and the advice", code, stderr)
	}
	for range 2 {
		code, stdout, stderr := run(t, "migrate", "--lease-database-url", db)
		if code != server.ExitOK || stdout != "lease schema \"boxscore_lease\" at version 1\n" {
			t.Fatalf("migrate: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	}
	pool, err := pgxpool.New(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(t.Context(), `INSERT INTO boxscore_lease.goose_db_version (version_id, is_applied) VALUES (2, true)`); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"migrate"}, {}, {"--no-migrate"}} {
		code, _, stderr := run(t, append(args, "--lease-database-url", db)...)
		if want := "up to version 1, the database is at version 2: upgrade the shard-consumer"; code != server.ExitFailed || !strings.Contains(stderr, want) {
			t.Errorf("%v on a newer lease schema: exit %d, stderr %q; want 1 and %q", args, code, stderr, want)
		}
	}
}
