package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/pkg/ingestapi"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/ingest"
)

// sampleError is a failure of kind k with every field its kind carries: a retry-after of
// 1.5 s, two results of which one acknowledged, one violation.
func sampleError(k ingest.Kind) error {
	e := &ingest.Error{Kind: k, Err: errors.New("cause")}
	switch k {
	case ingest.KindBusy, ingest.KindOverQuota:
		e.RetryAfter = 1500 * time.Millisecond
	case ingest.KindStreamUnavailable:
		e.RetryAfter = 1500 * time.Millisecond
		fallthrough
	case ingest.KindStreamRejected:
		e.Results = []ingest.Result{
			{Index: 0, EventID: "a", ShardID: "shardId-000000000000", SequenceNumber: "1"},
			{Index: 1, EventID: "b", ErrorCode: "ProvisionedThroughputExceededException"},
		}
	case ingest.KindInvalid, ingest.KindForbidden:
		e.Violations = []ingest.Violation{{Index: 2, EventID: "c", Violation: statevent.Violation{Field: "batting.atBats", Reason: "required", Detail: "d"}}}
	}
	// Front ends must see through wrapping.
	return fmt.Errorf("submit: %w", e)
}

// TestEveryKindHasAnAnswer answers each kind of the closed set of ingest.Kinds through the
// handler's writer, and fails for a kind added without an HTTP answer (here and in
// kindProblems).
func TestEveryKindHasAnAnswer(t *testing.T) {
	want := map[ingest.Kind]struct {
		status     int
		slug       string
		retryAfter string
		results    bool
		violations bool
	}{
		ingest.KindInvalid:           {status: http.StatusUnprocessableEntity, slug: ingestapi.TypeInvalidEvents, violations: true},
		ingest.KindTooLarge:          {status: http.StatusRequestEntityTooLarge, slug: ingestapi.TypeTooManyEvents},
		ingest.KindBusy:              {status: http.StatusServiceUnavailable, slug: ingestapi.TypeBusy, retryAfter: "2"},
		ingest.KindStreamUnavailable: {status: http.StatusServiceUnavailable, slug: ingestapi.TypeStreamUnavailable, retryAfter: "2", results: true},
		ingest.KindStreamRejected:    {status: http.StatusInternalServerError, slug: ingestapi.TypeStreamRejected, results: true},
		ingest.KindInternal:          {status: http.StatusInternalServerError, slug: ingestapi.TypeInternal},
		ingest.KindUnauthenticated:   {status: http.StatusUnauthorized, slug: ingestapi.TypeUnauthenticated},
		ingest.KindForbidden:         {status: http.StatusForbidden, slug: ingestapi.TypeForbidden, violations: true},
		ingest.KindOverQuota:         {status: http.StatusTooManyRequests, slug: ingestapi.TypeQuotaExceeded, retryAfter: "2"},
	}
	a := &api{logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, kind := range ingest.Kinds() {
		t.Run(kind.String(), func(t *testing.T) {
			w, ok := want[kind]
			if !ok {
				t.Fatalf("kind %s has no expected answer: give it one in kindProblems and here", kind)
			}
			if _, ok := kindProblems[kind]; !ok {
				t.Errorf("kind %s has no entry in kindProblems", kind)
			}
			rec := httptest.NewRecorder()
			a.writeSubmitError(rec, httptest.NewRequest(http.MethodPost, ingestapi.StatsPath, nil), sampleError(kind))
			resp := rec.Result()
			var p ingestapi.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("body is not a problem: %v\n%s", err, rec.Body)
			}
			if resp.StatusCode != w.status || p.Status != w.status || !p.HasType(w.slug) || p.Title == "" || p.Detail == "" {
				t.Errorf("answer %d %+v, want %d of type %s with a title and a detail", resp.StatusCode, p, w.status, w.slug)
			}
			if got := resp.Header.Get("WWW-Authenticate"); (got != "") != (w.status == http.StatusUnauthorized) {
				t.Errorf("WWW-Authenticate = %q on a %d", got, w.status)
			}
			if ct := resp.Header.Get("Content-Type"); ct != ingestapi.MediaTypeProblem {
				t.Errorf("Content-Type = %q", ct)
			}
			if got := resp.Header.Get("Retry-After"); got != w.retryAfter || (w.retryAfter != "" && p.RetryAfterSeconds != 2) {
				t.Errorf("Retry-After = %q and retryAfterSeconds %d, want %q", got, p.RetryAfterSeconds, w.retryAfter)
			}
			if gotResults := len(p.Acknowledged) == 1 && len(p.NotAcknowledged) == 1; gotResults != w.results {
				t.Errorf("acknowledged %v, not acknowledged %v; want the results listed: %t", p.Acknowledged, p.NotAcknowledged, w.results)
			}
			if w.results && (p.Acknowledged[0] != ingestapi.Result{Index: 0, EventID: "a", ShardID: "shardId-000000000000", SequenceNumber: "1"} ||
				p.NotAcknowledged[0] != ingestapi.NotAcknowledged{Index: 1, EventID: "b", ErrorCode: "ProvisionedThroughputExceededException"}) {
				t.Errorf("results %+v %+v, not those of the error", p.Acknowledged, p.NotAcknowledged)
			}
			wantErrors := []ingestapi.Violation(nil)
			if w.violations {
				wantErrors = []ingestapi.Violation{{Index: 2, EventID: "c", Field: "batting.atBats", Reason: "required", Detail: "d"}}
			}
			if fmt.Sprint(p.Errors) != fmt.Sprint(wantErrors) {
				t.Errorf("errors = %+v, want %+v", p.Errors, wantErrors)
			}
		})
	}
	if len(kindProblems) != len(ingest.Kinds()) {
		t.Errorf("kindProblems maps %d kinds, ingest has %d", len(kindProblems), len(ingest.Kinds()))
	}
}

func TestAnUnclassifiedErrorIsInternal(t *testing.T) {
	p := problemFor(httptest.NewRequest(http.MethodPost, ingestapi.StatsPath, nil), errors.New("surprise"))
	if p.Status != http.StatusInternalServerError || !p.HasType(ingestapi.TypeInternal) {
		t.Errorf("problem %+v, want 500 internal", p)
	}
}
