package pgmigrate

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

// A new migration file raises the version the binary understands by its name alone.
func TestLatestIsTheNewestFileName(t *testing.T) {
	files := fstest.MapFS{
		"00001_a.sql":   {Data: []byte("-- +goose Up\n")},
		"00002_b.sql":   {Data: []byte("-- +goose Up\n")},
		"00009_gap.sql": {Data: []byte("-- +goose Up\n")},
		"README.md":     {Data: []byte("not a migration")},
	}
	if got, err := Latest(files); err != nil || got != 9 {
		t.Errorf("Latest = %d, %v; want 9", got, err)
	}
	if _, err := Latest(fstest.MapFS{}); err == nil {
		t.Error("Latest of no migrations succeeded, want an error")
	}
	if _, err := Latest(fstest.MapFS{"first.sql": {}}); err == nil {
		t.Error("Latest of a file without a version succeeded, want an error")
	}
}

func TestVersionErrorSaysWhichWayAndWhatToDo(t *testing.T) {
	older := &VersionError{Component: "loader", Schema: "boxscore", Database: 7, Binary: 9, Program: "loader"}
	newer := &VersionError{Component: "loader", Schema: "boxscore", Database: 10, Binary: 9, Program: "loader"}
	for err, want := range map[error]string{
		older: "the loader schema \"boxscore\" is at version 7, this loader needs version 9: run `loader migrate`",
		newer: "this loader understands the loader schema \"boxscore\" up to version 9, the database is at version 10: upgrade the loader",
	} {
		var verr *VersionError
		if !errors.As(err, &verr) || !strings.Contains(err.Error(), want) {
			t.Errorf("%v, want %q", err, want)
		}
	}
}
