package publish

import (
	"errors"
	"fmt"
	"time"
)

// BusyError says the publisher already holds as many batches or bytes in flight as it is
// allowed to; nothing of this batch was sent. The caller should answer "try again later"
// instead of queueing, so memory stays bounded under load.
type BusyError struct {
	RetryAfter time.Duration
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("publisher busy: too many batches in flight, retry after %s", e.RetryAfter)
}

// UnavailableError says the stream did not acknowledge every event within the retry
// budget (or the caller gave up first). Results tells, per event, whether Kinesis
// acknowledged it; the rest were not acknowledged and may or may not have been written (a
// call cut off by a timeout has no answer). Resending the whole batch with the same event
// ids is safe: consumers deduplicate by event id.
type UnavailableError struct {
	RetryAfter time.Duration
	Results    []Result
	Cause      error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("stream unavailable: %d of %d events acknowledged: %v", acknowledged(e.Results), len(e.Results), e.Cause)
}

func (e *UnavailableError) Unwrap() error { return e.Cause }

// RejectedError says Kinesis refused the batch, or some of its entries, for a reason that
// retrying cannot fix (stream not found, access denied, a disabled KMS key...). Results tells
// which events were acknowledged before that.
type RejectedError struct {
	Results []Result
	Cause   error
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("stream rejected the batch: %d of %d events acknowledged: %v", acknowledged(e.Results), len(e.Results), e.Cause)
}

func (e *RejectedError) Unwrap() error { return e.Cause }

// RecordTooLargeError says one event's record is over the Kinesis limit of 1 MiB (data
// plus partition key). Nothing was sent.
type RecordTooLargeError struct {
	Index int
	Size  int
}

func (e *RecordTooLargeError) Error() string {
	return fmt.Sprintf("event %d: record of %d bytes is over the Kinesis limit of %d bytes", e.Index, e.Size, MaxRecordBytes)
}

// ErrTooManyEvents is returned for a batch of more than MaxBatchEvents events.
var ErrTooManyEvents = errors.New("too many events in one batch")

func acknowledged(results []Result) int {
	n := 0
	for _, r := range results {
		if r.Acknowledged() {
			n++
		}
	}
	return n
}
