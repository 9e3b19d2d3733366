package migrations_test

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations"
)

// TestTaskReadsTheEngineWhenItRuns: the migrate task is declared before the flags are
// parsed, so it must read --warehouse-engine when it runs, not when it is declared.
func TestTaskReadsTheEngineWhenItRuns(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	engine, schema := "", "tasked"
	task := migrations.Task(&engine, &url, &schema, nil)
	logger := slog.New(slog.DiscardHandler)
	run := func() (string, error) {
		var out bytes.Buffer
		err := task.Run(context.WithoutCancel(t.Context()), logger, &out)
		return out.String(), err
	}

	engine = "mysql"
	if _, err := run(); err == nil || !strings.Contains(err.Error(), `"mysql"`) {
		t.Fatalf("migrate with engine mysql = %v, want an error naming it", err)
	}

	engine = migrations.EnginePostgreSQL
	out, err := run()
	if err != nil || !strings.Contains(out, `loader schema "tasked" at version`) {
		t.Fatalf("migrate (postgresql) = %q, %v; want the version printed", out, err)
	}

	// The Redshift set, unrewritten, fails on PostgreSQL at its first Redshift-only clause,
	// goose's Redshift version table (an IDENTITY column), after its own runner has created
	// the lock table that only it uses.
	engine, schema = migrations.EngineRedshift, "tasked_redshift"
	if _, err := run(); err == nil || !strings.Contains(err.Error(), `"identity"`) {
		t.Fatalf("migrate (redshift) on PostgreSQL = %v, want goose's Redshift version table refused", err)
	}
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	defer pool.Close()
	if got := tablesIn(t, pool, "tasked_redshift"); !slices.Contains(got, "goose_lock") {
		t.Errorf("tables after the Redshift task = %v, want its lock table", got)
	}
}
