package statevent

import (
	"fmt"
	"time"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
)

// MaxClockSkew is how far ahead of the accepting clock a version may be: producers whose
// versions are timestamps run on clocks of their own.
const MaxClockSkew = 5 * time.Minute

// ReasonVersionAboveCeiling is the reason of CheckVersionCeiling's violation.
const ReasonVersionAboveCeiling = "version_above_ceiling"

// VersionCeiling is the highest version an event accepted at acceptedAt may carry: the
// time in microseconds since the Unix epoch, plus MaxClockSkew.
//
// Why: the warehouse keeps the line with the highest version, so a version of
// 9223372036854775807 would make a row that no later correction (nor retraction) could
// ever replace. Bounded by the clock, the highest version anyone can claim today is
// overtaken by an honest timestamped version minutes later. Small versions (1, 2, 3 ... as
// replay and extract send them) and versions that are timestamps in microseconds or
// coarser are all far below the ceiling.
func VersionCeiling(acceptedAt time.Time) int64 {
	return acceptedAt.Add(MaxClockSkew).UnixMicro()
}

// CheckVersionCeiling returns a violation when ev's version is above VersionCeiling of
// acceptedAt. The gateway checks against its clock at the request; the transformer against
// the envelope's accepted_at, the same instant as the gateway saw it, so a record the
// gateway took is never refused for it later.
func CheckVersionCeiling(ev *statsv1.StatEvent, acceptedAt time.Time) []Violation {
	ceiling := VersionCeiling(acceptedAt)
	if v := ev.GetVersion(); v > ceiling {
		return []Violation{{Field: "version", Reason: ReasonVersionAboveCeiling, Detail: fmt.Sprintf(
			"version %d is above %d: a version may not exceed the time it is accepted at in microseconds since the Unix epoch plus %s (%s)",
			v, ceiling, MaxClockSkew, acceptedAt.UTC().Format(time.RFC3339))}}
	}
	return nil
}
