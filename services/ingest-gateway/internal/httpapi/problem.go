package httpapi

import (
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5/middleware"
)

// problemTypeBase prefixes the type URI of every problem this API answers with.
const problemTypeBase = "https://boxscore.dev/problems/"

// Problem is an RFC 9457 problem details object, with the extension members this API uses.
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
	Errors []ViolationJSON `json:"errors,omitempty"`
	// Acknowledged and NotAcknowledged say what the stream took before it failed (503, 500).
	// Both are present, possibly empty, whenever the stream was involved.
	Acknowledged    []ResultJSON          `json:"acknowledged,omitzero"`
	NotAcknowledged []NotAcknowledgedJSON `json:"notAcknowledged,omitzero"`
	// RetryAfterSeconds repeats the Retry-After header for clients that only read bodies.
	RetryAfterSeconds int `json:"retryAfterSeconds,omitempty"`
}

// ViolationJSON is one problem with one field of one event.
type ViolationJSON struct {
	Index   int    `json:"index"`
	EventID string `json:"eventId,omitempty"`
	Field   string `json:"field"`
	Reason  string `json:"reason"`
	Detail  string `json:"detail"`
}

// ResultJSON says where the stream put one event.
type ResultJSON struct {
	Index          int    `json:"index"`
	EventID        string `json:"eventId"`
	ShardID        string `json:"shardId"`
	SequenceNumber string `json:"sequenceNumber"`
}

// NotAcknowledgedJSON names an event the stream did not acknowledge, and its last error.
type NotAcknowledgedJSON struct {
	Index     int    `json:"index"`
	EventID   string `json:"eventId"`
	ErrorCode string `json:"errorCode,omitempty"`
}

// AcceptedJSON is the body of a 202.
type AcceptedJSON struct {
	Accepted int          `json:"accepted"`
	Results  []ResultJSON `json:"results"`
}

func newProblem(r *http.Request, status int, slug, title, detail string) *Problem {
	return &Problem{
		Type:      problemTypeBase + slug,
		Title:     title,
		Status:    status,
		Detail:    detail,
		Instance:  r.URL.Path,
		RequestID: middleware.GetReqID(r.Context()),
	}
}

// writeProblem sends p as application/problem+json.
func writeProblem(w http.ResponseWriter, r *http.Request, logger *slog.Logger, p *Problem) {
	if p.RetryAfterSeconds > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(p.RetryAfterSeconds))
	}
	writeJSON(w, r, logger, "application/problem+json", p.Status, p)
}

func writeJSON(w http.ResponseWriter, r *http.Request, logger *slog.Logger, contentType string, status int, body any) {
	data, err := json.Marshal(body)
	if err != nil {
		// Only a programming error can get here: every body is plain structs.
		logger.ErrorContext(r.Context(), "encode response body", "error", err)
		status, contentType = http.StatusInternalServerError, "application/problem+json"
		data = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500}`)
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	data = append(data, '\n')
	if _, err := w.Write(data); err != nil {
		logger.DebugContext(r.Context(), "write response body", "error", err)
	}
}

// retryAfterSeconds rounds d up to whole seconds, at least 1, as Retry-After wants.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
