package ingest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/pkg/testutil/testevents"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/publish"
)

// What the publisher reports, ingest turns into the kinds the front ends answer by.
func TestPublishFailuresAreClassified(t *testing.T) {
	events := testevents.Batch(3, true)
	results := []publish.Result{
		{Index: 0, EventID: "a", ShardID: "shardId-000000000000", SequenceNumber: "1"},
		{Index: 1, EventID: "b", ErrorCode: "ProvisionedThroughputExceededException"},
	}
	for name, tc := range map[string]struct {
		err        error
		kind       Kind
		retryAfter time.Duration
		results    int
		violations int
	}{
		"busy":        {err: &publish.BusyError{RetryAfter: 3 * time.Second}, kind: KindBusy, retryAfter: 3 * time.Second},
		"unavailable": {err: &publish.UnavailableError{RetryAfter: time.Second, Results: results, Cause: errors.New("throttled")}, kind: KindStreamUnavailable, retryAfter: time.Second, results: 2},
		"rejected":    {err: &publish.RejectedError{Results: results, Cause: errors.New("KMSDisabledException")}, kind: KindStreamRejected, results: 2},
		"too large":   {err: &publish.RecordTooLargeError{Index: 1, Size: 2 << 20}, kind: KindInvalid, violations: 1},
		"too many":    {err: fmt.Errorf("%w: 501", publish.ErrTooManyEvents), kind: KindTooLarge},
		"unknown":     {err: errors.New("surprise"), kind: KindInternal},
	} {
		t.Run(name, func(t *testing.T) {
			e := classify(fmt.Errorf("wrapped: %w", tc.err), events)
			if e.Kind != tc.kind || e.RetryAfter != tc.retryAfter || len(e.Results) != tc.results || len(e.Violations) != tc.violations {
				t.Errorf("classified as %+v, want kind %s, retry after %s, %d results, %d violations", e, tc.kind, tc.retryAfter, tc.results, tc.violations)
			}
			if !errors.Is(e, tc.err) {
				t.Errorf("the classified error does not wrap its cause")
			}
			if KindOf(fmt.Errorf("again: %w", e)) != tc.kind {
				t.Errorf("KindOf does not see through wrapping")
			}
			if e.Error() == "" {
				t.Errorf("empty message")
			}
		})
	}
	tooLarge := classify(&publish.RecordTooLargeError{Index: 1, Size: 2 << 20}, events).Violations[0]
	if tooLarge.Index != 1 || tooLarge.EventID != events[1].GetEventId() || tooLarge.Reason != RejectedTooLarge {
		t.Errorf("too-large violation %+v, want event 1 named with reason %s", tooLarge, RejectedTooLarge)
	}
	if KindOf(errors.New("plain")) != KindInternal {
		t.Errorf("an unclassified error is not internal")
	}
}

func TestValidateClassifies(t *testing.T) {
	err := Validate(nil)
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindInvalid || len(e.Violations) != 1 || e.Violations[0].Index != BatchIndex || e.Violations[0].Field != "events" {
		t.Errorf("empty batch: %#v, want KindInvalid naming the batch's events", err)
	}
	if KindOf(Validate(testevents.Batch(MaxBatchEvents+1, false))) != KindTooLarge {
		t.Errorf("%d events are not KindTooLarge", MaxBatchEvents+1)
	}
	invalid := testevents.Batch(2, true)
	invalid[1].Batting.AtBats = nil
	if !errors.As(Validate(invalid), &e) || e.Kind != KindInvalid || e.Violations[0].Index != 1 {
		t.Errorf("invalid event: %v, want KindInvalid naming event 1", e)
	}
	if err := Validate(testevents.Batch(2, true)); err != nil {
		t.Errorf("valid batch: %v", err)
	}
}

func TestKindsAreDistinctAndNamed(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Kinds() {
		name := k.String()
		if seen[name] || name == fmt.Sprintf("Kind(%d)", int(k)) {
			t.Errorf("kind %d has no name of its own: %q", int(k), name)
		}
		seen[name] = true
	}
	if len(Kinds()) != int(kindCount) {
		t.Errorf("Kinds lists %d of %d kinds", len(Kinds()), kindCount)
	}
}
