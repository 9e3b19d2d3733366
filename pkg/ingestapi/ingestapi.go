// Package ingestapi is the wire contract of the ingest gateway's HTTP API, POST /v1/stats:
// the media types it takes and answers, the body of a 202, and the RFC 9457 problem details
// body of every other answer with the gateway's extension members. The gateway writes these
// types and its clients read them, so the two cannot drift apart.
package ingestapi

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
)

// StatsPath is the path of the batch endpoint.
const StatsPath = "/v1/stats"

// Media types of requests and answers.
const (
	// MediaTypeJSON is a request body holding a JSON array of events, and the 202's body.
	MediaTypeJSON = "application/json"
	// MediaTypeNDJSON is a request body holding one event per line.
	MediaTypeNDJSON = "application/x-ndjson"
	// MediaTypeProblem is the body of every answer other than 202 (RFC 9457).
	MediaTypeProblem = "application/problem+json"
)

// unmarshalEvent refuses unknown fields, so that a misspelt count ("atBat") is reported
// instead of being silently dropped and then taken for missing, or a batting member sent
// beside a retraction under a wrong name slips through.
var unmarshalEvent = protojson.UnmarshalOptions{DiscardUnknown: false}

// DecodeEvent decodes one event of a request body: a JSON object with the protojson names
// of boxscore.stats.v1.StatEvent (64-bit numbers as strings or numbers). It checks syntax
// and types only; the rules of an event (statevent.Normalize, ValidateShape,
// CheckConsistency, CheckVersionCeiling) come after it, so that every problem of a batch
// is reported at once in a 422.
//
// A batting line:
//
//	{"eventId": "e-1", "player": {"mlbId": "660271", "name": "Shohei Ohtani", "team": "LAD"},
//	 "game": {"gameId": "SDN202403200", "date": "2024-03-20", "opponent": "SD", "homeAway": "HOME_AWAY_AWAY"},
//	 "batting": {...every count...}, "version": "1", "source": "curl"}
//
// A retraction (a tombstone: the (player, game) line is removed from the warehouse) names
// the player and game, a version above the stored line's and a reason, and has no batting
// member; it needs the producer's "retract" scope:
//
//	{"player": {"mlbId": "660271"}, "game": {"gameId": "SDN202403200"}, "version": "2",
//	 "retraction": {"reason": "reported for the wrong player"}}
func DecodeEvent(data []byte) (*statsv1.StatEvent, error) {
	ev := &statsv1.StatEvent{}
	if err := unmarshalEvent.Unmarshal(data, ev); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	return ev, nil
}

// IsRetraction reports whether ev is a retraction, which needs the "retract" scope.
func IsRetraction(ev *statsv1.StatEvent) bool { return ev.GetRetraction() != nil }

// ProblemTypeBase prefixes the type URI of every problem the gateway answers with; the slug
// (one of the Type* constants) follows it.
const ProblemTypeBase = "https://boxscore.dev/problems/"

// Problem types (slugs), by the answer's status. Clients decide what to do by status first
// and by type where one status has several meanings (500 stream-rejected is not retried).
const (
	TypeEmptyBatch           = "empty-batch"            // 400
	TypeMalformedEvent       = "malformed-event"        // 400; Index and Line locate the event
	TypeUnreadableBody       = "unreadable-body"        // 400
	TypeNotFound             = "not-found"              // 404
	TypeMethodNotAllowed     = "method-not-allowed"     // 405
	TypeBodyTooLarge         = "body-too-large"         // 413
	TypeTooManyEvents        = "too-many-events"        // 413
	TypeUnsupportedMediaType = "unsupported-media-type" // 415
	TypeInvalidEvents        = "invalid-events"         // 422; Errors lists every violation
	TypeBusy                 = "busy"                   // 503 with Retry-After; nothing sent
	TypeStreamUnavailable    = "stream-unavailable"     // 503 with Retry-After; Acknowledged and NotAcknowledged
	TypeStreamRejected       = "stream-rejected"        // 500; Acknowledged and NotAcknowledged
	TypeInternal             = "internal"               // 500
)

// TypeURI is the type URI of a problem slug.
func TypeURI(slug string) string { return ProblemTypeBase + slug }

// Problem is an RFC 9457 problem details object with the extension members of the gateway.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// RequestID is the id the gateway logged the request under.
	RequestID string `json:"requestId,omitempty"`

	// Index and Line locate a malformed event: its position in the batch and, for NDJSON,
	// its line (1-based).
	Index *int `json:"index,omitempty"`
	Line  int  `json:"line,omitempty"`
	// Errors lists every violation of every invalid event (422).
	Errors []Violation `json:"errors,omitempty"`
	// Acknowledged and NotAcknowledged say what the stream took before it failed (503, 500).
	// Both are present, possibly empty, whenever the stream was involved.
	Acknowledged    []Result          `json:"acknowledged,omitzero"`
	NotAcknowledged []NotAcknowledged `json:"notAcknowledged,omitzero"`
	// RetryAfterSeconds repeats the Retry-After header for clients that only read bodies.
	RetryAfterSeconds int `json:"retryAfterSeconds,omitempty"`
}

// HasType reports whether the problem is of the type slug (a Type* constant).
func (p *Problem) HasType(slug string) bool { return p.Type == TypeURI(slug) }

// RetryAfter is RetryAfterSeconds as a duration; zero when the problem asks for no wait.
func (p *Problem) RetryAfter() time.Duration {
	return time.Duration(max(p.RetryAfterSeconds, 0)) * time.Second
}

// Violation is one problem with one field of one event.
type Violation struct {
	// Index is the event's position in the batch.
	Index int `json:"index"`
	// EventID is the event's id as the client sent it (empty when it sent none).
	EventID string `json:"eventId,omitempty"`
	// Field is the protojson path of the field, e.g. "batting.atBats"; empty for the event
	// as a whole.
	Field string `json:"field"`
	// Reason is machine-readable, e.g. "required", "duplicate", "too_large".
	Reason string `json:"reason"`
	// Detail is for people.
	Detail string `json:"detail"`
}

// Result says where the stream put one event.
type Result struct {
	Index          int    `json:"index"`
	EventID        string `json:"eventId"`
	ShardID        string `json:"shardId"`
	SequenceNumber string `json:"sequenceNumber"`
}

// NotAcknowledged names an event the stream did not acknowledge, and its last error. Its
// EventID is the one the gateway assigned when the client sent none: resending under it is
// what keeps a retry from duplicating the event.
type NotAcknowledged struct {
	Index     int    `json:"index"`
	EventID   string `json:"eventId"`
	ErrorCode string `json:"errorCode,omitempty"`
}

// Accepted is the body of a 202: every event, in batch order, with where the stream put it.
type Accepted struct {
	Accepted int      `json:"accepted"`
	Results  []Result `json:"results"`
}
