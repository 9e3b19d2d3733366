package warehouse_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/boxscore-dev/boxscore/services/loader/internal/warehouse"
)

func TestErrorClassesBySQLState(t *testing.T) {
	t.Parallel()
	cases := []struct {
		code               string
		transient, invalid bool
	}{
		{"08006", true, false},  // connection_failure
		{"08001", true, false},  // sqlclient_unable_to_establish_sqlconnection
		{"40001", true, false},  // serialization_failure
		{"40P01", true, false},  // deadlock_detected
		{"53300", true, false},  // too_many_connections
		{"53100", true, false},  // disk_full
		{"57P01", true, false},  // admin_shutdown
		{"57P02", true, false},  // crash_shutdown
		{"57P03", true, false},  // cannot_connect_now
		{"55P03", true, false},  // lock_not_available
		{"22003", false, true},  // numeric_value_out_of_range
		{"22P02", false, true},  // invalid_text_representation
		{"23505", false, true},  // unique_violation
		{"23514", false, true},  // check_violation
		{"42P01", false, false}, // undefined_table: a deployment bug, neither
		{"42501", false, false}, // insufficient_privilege
	}
	for _, tc := range cases {
		err := fmt.Errorf("load: %w", &pgconn.PgError{Code: tc.code, Message: "test"})
		if got := warehouse.IsTransient(err); got != tc.transient {
			t.Errorf("IsTransient(%s) = %t, want %t", tc.code, got, tc.transient)
		}
		if got := warehouse.IsDataError(err); got != tc.invalid {
			t.Errorf("IsDataError(%s) = %t, want %t", tc.code, got, tc.invalid)
		}
	}
}

func TestContextErrors(t *testing.T) {
	t.Parallel()
	if !warehouse.IsTransient(fmt.Errorf("load: %w", context.DeadlineExceeded)) {
		t.Error("IsTransient(deadline exceeded) = false, want true")
	}
	if warehouse.IsTransient(fmt.Errorf("load: %w", context.Canceled)) {
		t.Error("IsTransient(canceled) = true, want false: the caller gave up")
	}
	if warehouse.IsTransient(nil) || warehouse.IsDataError(nil) {
		t.Error("nil error classified")
	}
}

// On the Redshift path: Redshift's serializable isolation violation (ERROR 1023, SQLSTATE
// XX000), a failed S3 staging and a short COPY are retried; another XX000 is not.
func TestRedshiftTransientErrors(t *testing.T) {
	t.Parallel()
	conflict := &pgconn.PgError{Code: "XX000", Message: "1023: Serializable isolation violation on table - 100, transactions forming the cycle are: 1, 2"}
	for _, err := range []error{
		fmt.Errorf("load: %w", conflict),
		fmt.Errorf("load: %w", &warehouse.StagingError{Err: errors.New("put s3://b/k: AccessDenied")}),
		&warehouse.CopyCountError{Copied: 1, Staged: 2, Manifest: "s3://b/m"},
	} {
		if !warehouse.IsTransient(err) || warehouse.IsDataError(err) {
			t.Errorf("%v: IsTransient=%t IsDataError=%t, want transient", err, warehouse.IsTransient(err), warehouse.IsDataError(err))
		}
	}
	if other := (&pgconn.PgError{Code: "XX000", Message: "internal error"}); warehouse.IsTransient(other) {
		t.Errorf("%v is transient", other)
	}
}
