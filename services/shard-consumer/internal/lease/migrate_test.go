package lease

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/boxscore-dev/boxscore/pkg/pgmigrate"
)

// The lease schema's version check: unmigrated refused (run `shard-consumer migrate`),
// migrated accepted (twice: idempotent), newer refused (upgrade the shard-consumer).
func TestCheckTheLeaseSchemaVersion(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	latest, err := Latest()
	if err != nil || latest < 1 {
		t.Fatalf("Latest = %d, %v", latest, err)
	}
	_, err = Check(t.Context(), pool, DefaultSchema)
	var verr *pgmigrate.VersionError
	if !errors.As(err, &verr) || verr.Database != 0 || !strings.Contains(err.Error(), "run `shard-consumer migrate`") {
		t.Fatalf("Check before migrating = %v, want a VersionError at 0 saying to run shard-consumer migrate", err)
	}
	for range 2 {
		if err := Migrate(t.Context(), pool, DefaultSchema, nil); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		if got, err := Check(t.Context(), pool, DefaultSchema); err != nil || got != latest {
			t.Fatalf("Check after Migrate = %d, %v; want %d", got, err, latest)
		}
	}
	if _, err := pool.Exec(t.Context(), `INSERT INTO boxscore_lease.goose_db_version (version_id, is_applied) VALUES ($1, true)`, latest+1); err != nil {
		t.Fatal(err)
	}
	_, err = Check(t.Context(), pool, DefaultSchema)
	want := fmt.Sprintf("this shard-consumer understands the lease schema %q up to version %d, the database is at version %d: upgrade the shard-consumer", DefaultSchema, latest, latest+1)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Check on a newer schema = %v, want %q", err, want)
	}
	if _, err := MigrateAndCheck(t.Context(), pool, DefaultSchema, nil); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("MigrateAndCheck on a newer schema = %v, want %q", err, want)
	}
	if err := Migrate(t.Context(), pool, DefaultSchema, nil); err == nil {
		t.Error("Migrate on a newer schema succeeded, want it refused")
	}
}
