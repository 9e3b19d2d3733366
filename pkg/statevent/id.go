package statevent

import (
	"strconv"

	"github.com/google/uuid"
)

// eventIDNamespace is the UUIDv5 namespace of deterministic Boxscore event ids. It is itself
// UUIDv5(NameSpaceURL, "https://boxscore.dev/ns/stat-event"), written out so that it can
// never change by accident: changing it would make every replay add its lines again.
var eventIDNamespace = uuid.MustParse("cd2b9d93-62f6-5eec-91f4-014f3c7d6963")

// NewEventID returns a new UUIDv7 string. UUIDv7 ids sort by creation time, which keeps
// index inserts local and makes ids roughly ordered in logs.
func NewEventID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only when crypto/rand fails, which since Go 1.24 crashes the program
		// instead of returning an error; a random UUIDv4 is the conservative fallback.
		return uuid.NewString()
	}
	return id.String()
}

// DeterministicEventID returns the UUIDv5 of (playerID, gameID, version) in Boxscore's fixed
// namespace. Replays and backfills use it so that running them twice yields the same event
// ids, which the warehouse deduplicates: a rerun adds nothing twice.
//
// The name is "<playerID>:<gameID>:<version>"; it is unambiguous because both numbers are
// decimal integers, so the version is whatever follows the last colon.
func DeterministicEventID(playerID int64, gameID string, version int64) string {
	name := strconv.FormatInt(playerID, 10) + ":" + gameID + ":" + strconv.FormatInt(version, 10)
	return uuid.NewSHA1(eventIDNamespace, []byte(name)).String()
}
