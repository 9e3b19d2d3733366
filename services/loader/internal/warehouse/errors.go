package warehouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
)

// How the errors of this package are meant to reach a client (the gRPC layer maps them):
//
//	*ValidationError (ErrInvalidRequest)          -> INVALID_ARGUMENT, with the field violations
//	*CheckpointMismatchError (ErrCheckpointMismatch) -> FAILED_PRECONDITION, with the stored checkpoint
//	*FencedError (ErrFenced)                      -> FAILED_PRECONDITION, with the stored checkpoint
//	IsTransient(err)                              -> UNAVAILABLE: retry the same batch later
//	IsDataError(err)                              -> INVALID_ARGUMENT: retrying cannot help
//	anything else                                 -> INTERNAL

// ErrInvalidRequest is matched (errors.Is) by every *ValidationError.
var ErrInvalidRequest = errors.New("invalid request")

// FieldViolation is one problem with one field of a request; Field is a path of proto
// field names such as "rows[3].game_date".
type FieldViolation struct {
	Field       string
	Description string
}

// ValidationError reports a request that can never succeed as sent. Nothing was written.
type ValidationError struct {
	Violations []FieldViolation
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid request: ")
	for i, v := range e.Violations {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(v.Field)
		b.WriteString(": ")
		b.WriteString(v.Description)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalidRequest) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidRequest }

// ErrCheckpointMismatch is matched (errors.Is) by every *CheckpointMismatchError.
var ErrCheckpointMismatch = errors.New("checkpoint mismatch")

// CheckpointMismatchError reports that the stored checkpoint was not the expected one (or
// that the shard is already closed), so the batch was not written. Stored is the checkpoint
// found; its sequence number is empty when the shard has none.
type CheckpointMismatchError struct {
	Expected string
	Stored   *loadv1.Checkpoint
}

func (e *CheckpointMismatchError) Error() string {
	stored := e.Stored.GetSequenceNumber()
	if stored == "" {
		stored = "none"
	}
	expected := e.Expected
	if expected == "" {
		expected = "none"
	}
	if e.Stored.GetShardEnd() && e.Stored.GetSequenceNumber() == e.Expected {
		return fmt.Sprintf("checkpoint mismatch: shard %s/%s is already closed at %s",
			e.Stored.GetStream(), e.Stored.GetShardId(), stored)
	}
	return fmt.Sprintf("checkpoint mismatch: shard %s/%s is at %s (shard_end=%t), not at expected %s",
		e.Stored.GetStream(), e.Stored.GetShardId(), stored, e.Stored.GetShardEnd(), expected)
}

// Is makes errors.Is(err, ErrCheckpointMismatch) true.
func (e *CheckpointMismatchError) Is(target error) bool { return target == ErrCheckpointMismatch }

// ErrFenced is matched (errors.Is) by every *FencedError.
var ErrFenced = errors.New("fenced")

// FencedError reports a Load or ClaimShard refused because of the shard's lease: the
// stored lease token is not the Load's, or is greater than the claimed one (or equal, with
// another owner). Nothing was written. Stored is the checkpoint found, with its token and
// owner; a stored token greater than the request's means the shard has a new owner.
type FencedError struct {
	Op         string // "load" or "claim"
	LeaseToken int64  // the request's token
	Stored     *loadv1.Checkpoint
}

func (e *FencedError) Error() string {
	owner := e.Stored.GetOwner()
	if owner == "" {
		owner = "nobody"
	}
	if e.Stored.GetLeaseToken() == 0 {
		return fmt.Sprintf("fenced: shard %s/%s was never claimed: claim it before a %s with token %d",
			e.Stored.GetStream(), e.Stored.GetShardId(), e.Op, e.LeaseToken)
	}
	return fmt.Sprintf("fenced: shard %s/%s is claimed with lease token %d by %s; %s with token %d refused",
		e.Stored.GetStream(), e.Stored.GetShardId(), e.Stored.GetLeaseToken(), owner, e.Op, e.LeaseToken)
}

// Is makes errors.Is(err, ErrFenced) true.
func (e *FencedError) Is(target error) bool { return target == ErrFenced }

// transientCodes are SQLSTATEs, outside the transient classes, after which the same
// statement can succeed if tried again.
var transientCodes = map[string]bool{
	"57P01": true, // admin_shutdown
	"57P02": true, // crash_shutdown
	"57P03": true, // cannot_connect_now
	"57014": true, // query_canceled: a statement_timeout under load
	"55P03": true, // lock_not_available: a lock_timeout
}

// transientClasses are SQLSTATE classes (first two characters) that are all transient.
var transientClasses = map[string]bool{
	"08": true, // connection exception
	"40": true, // transaction rollback: serialization failure, deadlock
	"53": true, // insufficient resources: disk full, out of memory, too many connections
}

// IsTransient reports whether err may go away if the same request is tried again:
// connection failures, serialization failures and deadlocks (Redshift's ERROR 1023
// included), resource shortages, server restarts, lock and statement timeouts, network
// errors and deadlines, and on the Redshift path a failed S3 staging or a COPY that loaded
// fewer rows than staged. A mismatch, fencing or validation error is never transient.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, ErrInvalidRequest) || errors.Is(err, ErrCheckpointMismatch) || errors.Is(err, ErrFenced) {
		return false
	}
	var (
		countErr *CopyCountError
		stageErr *StagingError
	)
	if errors.As(err, &countErr) || errors.As(err, &stageErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return transientCodes[pgErr.Code] || transientClasses[sqlStateClass(pgErr.Code)] || isRedshiftSerializationConflict(pgErr)
	}
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return true
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connectErr) || errors.As(err, &netErr) {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE)
}

// IsDataError reports whether the database refused the data itself (SQLSTATE class 22,
// data exception, or 23, integrity constraint violation): sending it again cannot help.
func IsDataError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	class := sqlStateClass(pgErr.Code)
	return class == "22" || class == "23"
}

func sqlStateClass(code string) string {
	if len(code) < 2 {
		return code
	}
	return code[:2]
}

// isRedshiftSerializationConflict recognizes Redshift's serializable isolation violation
// (ERROR 1023), which it reports with a generic SQLSTATE (XX000) and this message.
func isRedshiftSerializationConflict(pgErr *pgconn.PgError) bool {
	return strings.Contains(pgErr.Message, "Serializable isolation violation")
}

// StagingError is a failure to stage a Redshift load in S3: infrastructure, never the
// data, so transient (IsTransient).
type StagingError struct{ Err error }

func (e *StagingError) Error() string { return "stage rows in S3: " + e.Err.Error() }
func (e *StagingError) Unwrap() error { return e.Err }
