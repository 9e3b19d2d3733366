package ingest

import (
	"fmt"
	"time"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// Validate is ValidateAt the current time.
func Validate(events []*statsv1.StatEvent) error {
	return ValidateAt(events, time.Now())
}

// ValidateAt normalizes every event in place and checks the batch: its size, then every
// event by the rules the transformer applies after it (statevent: shape, then consistency
// when the shape is sound, and the version ceiling against now), so that a producer learns
// of an impossible line from its 422 instead of from a dead letter it cannot see. It
// reports every violation of every event, not just the first, in an *Error of KindInvalid
// (KindTooLarge for too many events).
func ValidateAt(events []*statsv1.StatEvent, now time.Time) error {
	switch {
	case len(events) == 0:
		return &Error{Kind: KindInvalid, Violations: []Violation{{Index: BatchIndex, Violation: statevent.Violation{
			Field: "events", Reason: "required", Detail: "the batch has no events",
		}}}}
	case len(events) > MaxBatchEvents:
		return &Error{Kind: KindTooLarge, Err: fmt.Errorf("the batch has %d events, at most %d are allowed", len(events), MaxBatchEvents)}
	}
	var violations []Violation
	firstIndex := make(map[string]int, len(events))
	for i, ev := range events {
		statevent.Normalize(ev)
		eventViolations := statevent.ValidateShape(ev)
		if len(eventViolations) == 0 {
			// Consistency rules read counts the shape rules vouch for.
			eventViolations = statevent.CheckConsistency(ev)
		}
		eventViolations = append(eventViolations, statevent.CheckVersionCeiling(ev, now)...)
		for _, v := range eventViolations {
			violations = append(violations, Violation{Index: i, EventID: ev.GetEventId(), Violation: v})
		}
		// Two events with one id in one batch are a client bug: downstream, the second would
		// silently replace or be dropped as a duplicate of the first.
		if id := ev.GetEventId(); id != "" {
			if first, seen := firstIndex[id]; seen {
				violations = append(violations, Violation{Index: i, EventID: id, Violation: statevent.Violation{
					Field:  "eventId",
					Reason: "duplicate",
					Detail: fmt.Sprintf("event id %s is also the id of event %d of this batch", id, first),
				}})
			} else {
				firstIndex[id] = i
			}
		}
	}
	if len(violations) > 0 {
		return &Error{Kind: KindInvalid, Violations: violations}
	}
	return nil
}
