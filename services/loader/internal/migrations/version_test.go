package migrations_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/boxscore-dev/boxscore/pkg/pgmigrate"
	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations"
)

func latest(t *testing.T) int64 {
	t.Helper()
	v, err := migrations.Latest()
	if err != nil {
		t.Fatalf("Latest: %v", err)
	}
	return v
}

func TestMigrateReportsTheLatestVersionAndIsIdempotent(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	want := latest(t)
	for range 2 {
		got, err := migrations.Migrate(t.Context(), pool, migrations.DefaultSchema, nil)
		if err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		if got != want {
			t.Fatalf("Migrate = version %d, want %d (the newest file)", got, want)
		}
	}
	applied := appliedVersions(t, pool, migrations.DefaultSchema)
	for version := int64(1); version <= want; version++ {
		if applied[version] != 1 {
			t.Errorf("version %d recorded %d times after two migrates, want once (all: %v)", version, applied[version], applied)
		}
	}
}

func TestCheckAcceptsTheSchemaAtTheBinarysVersion(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	if _, err := migrations.Migrate(t.Context(), pool, migrations.DefaultSchema, nil); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	got, err := migrations.Check(t.Context(), pool, migrations.DefaultSchema)
	if err != nil || got != latest(t) {
		t.Fatalf("Check = %d, %v; want %d, nil", got, err, latest(t))
	}
}

func TestCheckRefusesAnUnmigratedOrOlderSchema(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	want := latest(t)

	// Never migrated: no schema at all.
	_, err := migrations.Check(t.Context(), pool, migrations.DefaultSchema)
	assertVersionError(t, err, 0, want, "is at version 0, this loader needs version "+fmt.Sprint(want)+": run `loader migrate`")

	// Migrated by the previous release: the newest migration not applied yet.
	if _, err := migrations.Migrate(t.Context(), pool, migrations.DefaultSchema, nil); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if _, err := pool.Exec(t.Context(), `DELETE FROM boxscore.goose_db_version WHERE version_id = $1`, want); err != nil {
		t.Fatalf("forget the newest version: %v", err)
	}
	_, err = migrations.Check(t.Context(), pool, migrations.DefaultSchema)
	assertVersionError(t, err, want-1, want, fmt.Sprintf("is at version %d, this loader needs version %d: run `loader migrate`", want-1, want))
}

func TestCheckAndMigrateRefuseANewerSchema(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	want := latest(t)
	if _, err := migrations.Migrate(t.Context(), pool, migrations.DefaultSchema, nil); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	// A newer release migrated the database.
	if _, err := pool.Exec(t.Context(), `INSERT INTO boxscore.goose_db_version (version_id, is_applied) VALUES ($1, true)`, want+1); err != nil {
		t.Fatalf("record a newer version: %v", err)
	}
	message := fmt.Sprintf("this loader understands the loader schema \"boxscore\" up to version %d, the database is at version %d: upgrade the loader", want, want+1)
	_, err := migrations.Check(t.Context(), pool, migrations.DefaultSchema)
	assertVersionError(t, err, want+1, want, message)
	// An old migrate Job (a rollback) must not touch it either.
	_, err = migrations.Migrate(t.Context(), pool, migrations.DefaultSchema, nil)
	assertVersionError(t, err, want+1, want, message)
	if err := migrations.Apply(t.Context(), pool, migrations.DefaultSchema, nil); err == nil {
		t.Error("Apply on a newer schema succeeded, want it refused")
	}
}

func assertVersionError(t *testing.T, err error, database, binary int64, message string) {
	t.Helper()
	var verr *pgmigrate.VersionError
	if !errors.As(err, &verr) {
		t.Fatalf("error = %v, want a *pgmigrate.VersionError", err)
	}
	if verr.Database != database || verr.Binary != binary {
		t.Errorf("VersionError database %d binary %d, want %d and %d", verr.Database, verr.Binary, database, binary)
	}
	if !strings.Contains(err.Error(), message) {
		t.Errorf("error %q does not say %q", err, message)
	}
}
