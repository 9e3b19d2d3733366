package httpapi

import (
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/boxscore-dev/boxscore/pkg/ingestapi"
)

func newProblem(r *http.Request, status int, slug, title, detail string) *ingestapi.Problem {
	return &ingestapi.Problem{
		Type:      ingestapi.TypeURI(slug),
		Title:     title,
		Status:    status,
		Detail:    detail,
		Instance:  r.URL.Path,
		RequestID: middleware.GetReqID(r.Context()),
	}
}

// writeProblem sends p as application/problem+json (ingestapi.Problem is the one body the
// gateway writes and its clients read).
func writeProblem(w http.ResponseWriter, r *http.Request, logger *slog.Logger, p *ingestapi.Problem) {
	if p.RetryAfterSeconds > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(p.RetryAfterSeconds))
	}
	writeJSON(w, r, logger, ingestapi.MediaTypeProblem, p.Status, p)
}

func writeJSON(w http.ResponseWriter, r *http.Request, logger *slog.Logger, contentType string, status int, body any) {
	data, err := json.Marshal(body)
	if err != nil {
		// Only a programming error can get here: every body is plain structs.
		logger.ErrorContext(r.Context(), "encode response body", "error", err)
		status, contentType = http.StatusInternalServerError, ingestapi.MediaTypeProblem
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
