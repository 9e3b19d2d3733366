package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/ingestapi"
	"github.com/boxscore-dev/boxscore/pkg/testutil/testevents"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/ingest"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/publish"
)

// These tests cover everything the gateway answers before it reaches the stream; the
// component tests (../../componenttest) cover the answers that involve Kinesis.

// refusingPublisher fails the test if anything reaches it: every request here must be
// answered before the stream.
type refusingPublisher struct{ t *testing.T }

// Reserve admits every request (nil is a reservation that holds nothing); the budget is
// tested in ../publish and ../../componenttest.
func (refusingPublisher) Reserve(int64) (*publish.Reservation, error) { return nil, nil }

func (p refusingPublisher) PublishReserved(_ context.Context, _ *publish.Reservation, _ string, events []*statsv1.StatEvent) ([]publish.Result, error) {
	p.t.Errorf("Publish called with %d events; the request should have been refused before the stream", len(events))
	return nil, io.ErrUnexpectedEOF
}

func newTestHandler(t *testing.T) http.Handler {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	return NewHandler(newService(t, refusingPublisher{t}), logger, Options{})
}

func newService(t *testing.T, p ingest.Publisher) *ingest.Service {
	t.Helper()
	svc, err := ingest.NewService(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func post(t *testing.T, h http.Handler, contentType, body string) (*http.Response, ingestapi.Problem) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/v1/stats", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	var p ingestapi.Problem
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatalf("problem body is not JSON: %v\n%s", err, rec.Body.String())
		}
	}
	return resp, p
}

// checkProblem asserts the RFC 9457 members every problem must have.
func checkProblem(t *testing.T, resp *http.Response, p ingestapi.Problem, status int, slug string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d (problem %+v)", resp.StatusCode, status, p)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json", ct)
	}
	if p.Type != ingestapi.ProblemTypeBase+slug || p.Status != status || p.Title == "" || p.Detail == "" || p.Instance != "/v1/stats" {
		t.Errorf("problem = %+v, want type %s, status %d, a title, a detail and instance /v1/stats", p, ingestapi.ProblemTypeBase+slug, status)
	}
	if p.RequestID == "" {
		t.Errorf("problem has no requestId")
	}
}

func TestUnsupportedMediaType(t *testing.T) {
	h := newTestHandler(t)
	for _, ct := range []string{"", "text/plain", "application/xml", "application/json-seq", "not a media type;;"} {
		t.Run(ct, func(t *testing.T) {
			resp, p := post(t, h, ct, `[]`)
			checkProblem(t, resp, p, http.StatusUnsupportedMediaType, "unsupported-media-type")
			if got := resp.Header.Get("Accept-Post"); !strings.Contains(got, "application/x-ndjson") {
				t.Errorf("Accept-Post = %q, want the supported types", got)
			}
		})
	}
}

func TestMediaTypeParameters(t *testing.T) {
	// A charset parameter is common and harmless: the request must get past the media type
	// check to the empty-batch answer.
	resp, p := post(t, newTestHandler(t), "application/json; charset=utf-8", `[]`)
	checkProblem(t, resp, p, http.StatusBadRequest, "empty-batch")
}

func TestEmptyBatch(t *testing.T) {
	h := newTestHandler(t)
	for name, tc := range map[string]struct{ ct, body string }{
		"json array":   {"application/json", `[]`},
		"json spaced":  {"application/json", " [ \n ] \n"},
		"ndjson empty": {"application/x-ndjson", ``},
		"ndjson blank": {"application/x-ndjson", "\n  \n\t\n"},
	} {
		t.Run(name, func(t *testing.T) {
			resp, p := post(t, h, tc.ct, tc.body)
			checkProblem(t, resp, p, http.StatusBadRequest, "empty-batch")
		})
	}
}

func TestMalformedJSON(t *testing.T) {
	valid := testevents.JSON(t, testevents.Valid(660271, 1))
	tests := []struct {
		name, ct, body string
		index, line    int // index -1: no index expected
		detailHas      string
	}{
		{"not json", "application/json", `nope`, -1, 0, "not JSON"},
		{"object", "application/json", `{{`, -1, 0, "JSON array"},
		{"object not array", "application/json", valid, -1, 0, "JSON array"},
		{"syntax error in second element", "application/json", "[" + valid + `, {"player": }]`, 1, 0, "event 1"},
		{"unknown field", "application/json", "[" + valid + "," + valid + `, {"batting": {"atBat": 4}}]`, 2, 0, "atBat"},
		{"wrong type", "application/json", `[{"batting": {"atBats": "four"}}]`, 0, 0, "atBats"},
		{"element not an object", "application/json", `[` + valid + `, 42]`, 1, 0, "event 1"},
		{"unclosed array", "application/json", "[" + valid, -1, 0, "unexpected end"},
		{"trailing data", "application/json", "[" + valid + "] []", -1, 0, "one JSON array"},
		{"ndjson bad line", "application/x-ndjson", valid + "\n\n" + valid + "\n" + `{"player": {"mlbId": "x"}}` + "\n", 2, 4, "line 4"},
		{"ndjson array line", "application/x-ndjson", "[" + valid + "]\n", 0, 1, "line 1"},
	}
	h := newTestHandler(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, p := post(t, h, tc.ct, tc.body)
			checkProblem(t, resp, p, http.StatusBadRequest, "malformed-event")
			if !strings.Contains(p.Detail, tc.detailHas) {
				t.Errorf("detail %q does not mention %q", p.Detail, tc.detailHas)
			}
			switch {
			case tc.index < 0 && p.Index != nil:
				t.Errorf("index = %d, want none", *p.Index)
			case tc.index >= 0 && (p.Index == nil || *p.Index != tc.index):
				t.Errorf("index = %v, want %d", p.Index, tc.index)
			}
			if p.Line != tc.line {
				t.Errorf("line = %d, want %d", p.Line, tc.line)
			}
		})
	}
}

func TestTooManyEvents(t *testing.T) {
	h := newTestHandler(t)
	events := testevents.Batch(ingest.MaxBatchEvents+1, false)
	for name, body := range map[string]struct{ ct, body string }{
		"json":   {"application/json", testevents.JSONArray(t, events)},
		"ndjson": {"application/x-ndjson", testevents.NDJSON(t, events)},
	} {
		t.Run(name, func(t *testing.T) {
			resp, p := post(t, h, body.ct, body.body)
			checkProblem(t, resp, p, http.StatusRequestEntityTooLarge, "too-many-events")
		})
	}
}

func TestBodyTooLarge(t *testing.T) {
	h := newTestHandler(t)
	// 400 valid events padded with whitespace past 5 MiB: few enough events, too many bytes.
	events := testevents.Batch(400, false)
	padding := strings.Repeat(" ", MaxBodyBytes/400+10)
	parts := make([]string, len(events))
	for i, ev := range events {
		parts[i] = testevents.JSON(t, ev) + padding
	}
	jsonBody := "[" + strings.Join(parts, ",") + "]"
	ndjsonBody := strings.Join(parts, "\n")
	if len(jsonBody) <= MaxBodyBytes {
		t.Fatalf("test body is only %d bytes", len(jsonBody))
	}
	for name, body := range map[string]struct{ ct, body string }{
		"json":   {"application/json", jsonBody},
		"ndjson": {"application/x-ndjson", ndjsonBody},
	} {
		t.Run(name, func(t *testing.T) {
			resp, p := post(t, h, body.ct, body.body)
			checkProblem(t, resp, p, http.StatusRequestEntityTooLarge, "body-too-large")
		})
	}
	t.Run("chunked without content length", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, "/v1/stats", io.MultiReader(strings.NewReader(jsonBody)))
		req.ContentLength = -1
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("status = %d, want 413: %s", rec.Code, rec.Body.String())
		}
	})
}

func TestInvalidEventsAreAllReported(t *testing.T) {
	events := testevents.Batch(4, true)
	events[1].Batting.AtBats = nil             // required
	events[1].Game.Date = "2024-02-30"         // invalid_date
	events[3].Player.MlbId = -5                // negative
	events[2].EventId = events[0].GetEventId() // duplicate
	resp, p := post(t, newTestHandler(t), "application/json", testevents.JSONArray(t, events))
	checkProblem(t, resp, p, http.StatusUnprocessableEntity, "invalid-events")

	type key struct {
		index       int
		field, reas string
	}
	got := map[key]ingestapi.Violation{}
	for _, e := range p.Errors {
		got[key{e.Index, e.Field, e.Reason}] = e
		if e.Detail == "" {
			t.Errorf("violation %+v has no detail", e)
		}
	}
	want := []key{
		{1, "batting.atBats", "required"},
		{1, "game.date", "invalid_date"},
		{2, "eventId", "duplicate"},
		{3, "player.mlbId", "negative"},
	}
	for _, k := range want {
		v, ok := got[k]
		if !ok {
			t.Errorf("no violation %+v in %+v", k, p.Errors)
			continue
		}
		if v.EventID != events[k.index].GetEventId() {
			t.Errorf("violation %+v: eventId = %q, want %q", k, v.EventID, events[k.index].GetEventId())
		}
	}
	if len(p.Errors) != len(want) {
		t.Errorf("got %d violations, want %d: %+v", len(p.Errors), len(want), p.Errors)
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	h := newTestHandler(t)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/v1/stats", http.StatusMethodNotAllowed},
		{http.MethodPost, "/v1/nope", http.StatusNotFound},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.status || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s: status %d, Content-Type %q; want %d problem+json", tc.method, tc.path, rec.Code, rec.Header().Get("Content-Type"), tc.status)
		}
	}
}

type panickingPublisher struct{}

func (panickingPublisher) Reserve(int64) (*publish.Reservation, error) { return nil, nil }

func (panickingPublisher) PublishReserved(context.Context, *publish.Reservation, string, []*statsv1.StatEvent) ([]publish.Result, error) {
	panic("boom")
}

func TestPanicBecomesProblem(t *testing.T) {
	h := NewHandler(newService(t, panickingPublisher{}), slog.New(slog.NewTextHandler(io.Discard, nil)), Options{})
	resp, p := post(t, h, "application/json", testevents.JSONArray(t, testevents.Batch(1, false)))
	if resp.StatusCode != http.StatusInternalServerError || p.Type != ingestapi.ProblemTypeBase+"internal" {
		t.Fatalf("status %d, problem %+v; want a 500 internal problem", resp.StatusCode, p)
	}
}
