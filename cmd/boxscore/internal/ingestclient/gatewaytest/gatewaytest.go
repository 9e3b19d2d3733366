// Package gatewaytest is a stand-in for the ingest gateway's POST /v1/stats in tests of its
// clients: an httptest server that answers like the gateway (NDJSON or a JSON array, at most
// 500 events, the batch validated whole with pkg/statevent and refused with 422 when any
// event is invalid, 202 with a shard and sequence number per event) and records every
// request. Tests can queue failures (429, 503 with Retry-After, 413, a dropped connection)
// to be answered before the normal handling, and require API keys (RequireKeys): 401 without
// a known bearer key, 403 when the key lacks the scope an event needs.
//
// It is not the gateway: there is no stream behind it. The gateway's own tests cover the
// real thing; this lets a client's tests run in milliseconds without Kinesis.
package gatewaytest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/ingestapi"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// MaxBatchEvents is the gateway's limit of events per request.
const MaxBatchEvents = 500

// Request is one request the gateway received.
type Request struct {
	At          time.Time // when it arrived
	ContentType string
	UserAgent   string
	// Authorization is the header as received (tests check that the key was sent).
	Authorization string
	Events        []*statsv1.StatEvent // decoded; nil when the body could not be decoded
	Status        int                  // the status answered
}

// Fault is a canned answer served instead of the normal handling.
type Fault struct {
	Status     int    // e.g. 429, 503, 413; 0 drops the connection without an answer
	RetryAfter string // Retry-After header value, if any
	Type       string // problem type slug, e.g. "busy"; default derived from Status
	Detail     string
}

// Gateway is a fake ingest gateway.
type Gateway struct {
	URL string

	mu       sync.Mutex
	requests []Request
	faults   []Fault
	accepted []*statsv1.StatEvent
	seq      int64
	// invalid, when set, adds violations of its own to the statevent checks.
	invalid func(*statsv1.StatEvent) []statevent.Violation
	// keys, when set, maps each accepted API key to its scopes.
	keys map[string][]string
}

// RequireKeys makes the gateway require "Authorization: Bearer <key>" with one of keys,
// each mapped to its scopes: "ingest" for batting lines, "retract" for retractions. A
// request without a known key is answered 401, one whose key lacks a scope 403, like the
// gateway does.
func (g *Gateway) RequireKeys(keys map[string][]string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.keys = keys
}

// Start starts a fake gateway on 127.0.0.1, closed at the end of the test.
func Start(t testing.TB) *Gateway {
	t.Helper()
	g := &Gateway{}
	srv := httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	return g
}

// FailNext queues answers for the next requests, one request each, in order.
func (g *Gateway) FailNext(faults ...Fault) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.faults = append(g.faults, faults...)
}

// RejectWhen adds a validation rule: events for which fn returns violations are invalid.
func (g *Gateway) RejectWhen(fn func(*statsv1.StatEvent) []statevent.Violation) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.invalid = fn
}

// Requests returns the requests received so far.
func (g *Gateway) Requests() []Request {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Request(nil), g.requests...)
}

// Accepted returns every event answered 202, in the order accepted.
func (g *Gateway) Accepted() []*statsv1.StatEvent {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*statsv1.StatEvent(nil), g.accepted...)
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	if r.Method != http.MethodPost || r.URL.Path != ingestapi.StatsPath {
		g.record(Request{At: at, Status: http.StatusNotFound})
		writeProblem(w, http.StatusNotFound, ingestapi.TypeNotFound, "no resource at "+r.URL.Path)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 5<<20+1))
	req := Request{At: at, ContentType: r.Header.Get("Content-Type"), UserAgent: r.Header.Get("User-Agent"),
		Authorization: r.Header.Get("Authorization")}
	if err != nil {
		req.Status = http.StatusBadRequest
		g.record(req)
		writeProblem(w, http.StatusBadRequest, ingestapi.TypeUnreadableBody, err.Error())
		return
	}

	events, decodeErr := decode(req.ContentType, body)
	req.Events = events
	if status, slug, detail := g.authorize(req.Authorization, events); status != 0 {
		req.Status = status
		g.record(req)
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="boxscore"`)
		}
		writeProblem(w, status, slug, detail)
		return
	}

	g.mu.Lock()
	var fault *Fault
	if len(g.faults) > 0 {
		f := g.faults[0]
		g.faults = g.faults[1:]
		fault = &f
	}
	invalid := g.invalid
	g.mu.Unlock()

	if fault != nil {
		req.Status = fault.Status
		g.record(req)
		if fault.Status == 0 {
			dropConnection(w)
			return
		}
		if fault.RetryAfter != "" {
			w.Header().Set("Retry-After", fault.RetryAfter)
		}
		slug := fault.Type
		if slug == "" {
			slug = map[int]string{429: "too-many-requests", 503: ingestapi.TypeBusy, 413: ingestapi.TypeTooManyEvents, 500: ingestapi.TypeInternal}[fault.Status]
		}
		detail := fault.Detail
		if detail == "" {
			detail = fmt.Sprintf("injected %d", fault.Status)
		}
		writeProblem(w, fault.Status, slug, detail)
		return
	}

	status, answer := g.handle(events, decodeErr, invalid)
	req.Status = status
	g.record(req)
	if status == http.StatusAccepted {
		writeJSON(w, status, ingestapi.MediaTypeJSON, answer)
		return
	}
	writeJSON(w, status, ingestapi.MediaTypeProblem, answer)
}

// authorize checks the bearer key when RequireKeys was called: 0 when the request may go on,
// else the status, problem type and detail to answer.
func (g *Gateway) authorize(header string, events []*statsv1.StatEvent) (int, string, string) {
	g.mu.Lock()
	keys := g.keys
	g.mu.Unlock()
	if keys == nil {
		return 0, "", ""
	}
	key, ok := strings.CutPrefix(header, "Bearer ")
	scopes, known := keys[key]
	if !ok || !known {
		return http.StatusUnauthorized, "unauthenticated", "a valid API key is required (Authorization: Bearer <key>)"
	}
	for _, ev := range events {
		need := "ingest"
		if ev.GetRetraction() != nil {
			need = "retract"
		}
		if !slices.Contains(scopes, need) {
			return http.StatusForbidden, "forbidden", fmt.Sprintf("the producer lacks the %s scope", need)
		}
	}
	return 0, "", ""
}

func (g *Gateway) record(r Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.requests = append(g.requests, r)
}

// handle answers a request as the gateway would when the stream takes everything.
func (g *Gateway) handle(events []*statsv1.StatEvent, decodeErr error, invalid func(*statsv1.StatEvent) []statevent.Violation) (int, any) {
	switch {
	case decodeErr != nil:
		return http.StatusBadRequest, newProblem(http.StatusBadRequest, ingestapi.TypeMalformedEvent, decodeErr.Error())
	case len(events) == 0:
		return http.StatusBadRequest, newProblem(http.StatusBadRequest, ingestapi.TypeEmptyBatch, "the request has no events")
	case len(events) > MaxBatchEvents:
		return http.StatusRequestEntityTooLarge, newProblem(http.StatusRequestEntityTooLarge, ingestapi.TypeTooManyEvents,
			fmt.Sprintf("the request has more than %d events", MaxBatchEvents))
	}
	var violations []ingestapi.Violation
	seen := map[string]int{}
	for i, ev := range events {
		statevent.Normalize(ev)
		vs := statevent.ValidateShape(ev)
		if invalid != nil {
			vs = append(vs, invalid(ev)...)
		}
		if id := ev.GetEventId(); id != "" {
			if first, dup := seen[id]; dup {
				vs = append(vs, statevent.Violation{Field: "eventId", Reason: "duplicate",
					Detail: fmt.Sprintf("event id %s is also the id of event %d of this batch", id, first)})
			} else {
				seen[id] = i
			}
		}
		for _, v := range vs {
			violations = append(violations, ingestapi.Violation{Index: i, EventID: ev.GetEventId(), Field: v.Field, Reason: v.Reason, Detail: v.Detail})
		}
	}
	if len(violations) > 0 {
		p := newProblem(http.StatusUnprocessableEntity, ingestapi.TypeInvalidEvents,
			fmt.Sprintf("%d violations; the batch is validated whole, so none of its events was sent", len(violations)))
		p.Errors = violations
		return http.StatusUnprocessableEntity, p
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	results := make([]ingestapi.Result, len(events))
	for i, ev := range events {
		if ev.GetEventId() == "" {
			ev.EventId = statevent.NewEventID()
		}
		g.seq++
		results[i] = ingestapi.Result{Index: i, EventID: ev.GetEventId(),
			ShardID:        fmt.Sprintf("shardId-%012d", ev.GetPlayer().GetMlbId()%2),
			SequenceNumber: strconv.FormatInt(g.seq, 10)}
		g.accepted = append(g.accepted, ev)
	}
	return http.StatusAccepted, ingestapi.Accepted{Accepted: len(events), Results: results}
}

func decode(contentType string, body []byte) ([]*statsv1.StatEvent, error) {
	mediaType, _, _ := mime.ParseMediaType(contentType)
	var events []*statsv1.StatEvent
	switch mediaType {
	case ingestapi.MediaTypeNDJSON:
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(make([]byte, 1<<20), 5<<20)
		for line := 1; sc.Scan(); line++ {
			text := bytes.TrimSpace(sc.Bytes())
			if len(text) == 0 {
				continue
			}
			ev := &statsv1.StatEvent{}
			if err := protojson.Unmarshal(text, ev); err != nil {
				return nil, fmt.Errorf("event %d (line %d): %w", len(events), line, err)
			}
			events = append(events, ev)
		}
		return events, sc.Err()
	case ingestapi.MediaTypeJSON:
		var raw []json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, fmt.Errorf("the body must be a JSON array of events: %w", err)
		}
		for i, r := range raw {
			ev := &statsv1.StatEvent{}
			if err := protojson.Unmarshal(r, ev); err != nil {
				return nil, fmt.Errorf("event %d: %w", i, err)
			}
			events = append(events, ev)
		}
		return events, nil
	default:
		return nil, fmt.Errorf("Content-Type %q is not supported", contentType)
	}
}

func newProblem(status int, slug, detail string) *ingestapi.Problem {
	return &ingestapi.Problem{Type: ingestapi.TypeURI(slug), Title: http.StatusText(status), Status: status,
		Detail: detail, Instance: ingestapi.StatsPath}
}

func writeProblem(w http.ResponseWriter, status int, slug, detail string) {
	p := newProblem(status, slug, detail)
	writeJSON(w, status, ingestapi.MediaTypeProblem, p)
}

func writeJSON(w http.ResponseWriter, status int, contentType string, body any) {
	data, err := json.Marshal(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n')) // a client that went away is the test's to notice
}

// dropConnection closes the connection without an answer: the client sees a network error.
func dropConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok { // httptest's always can; answer something the client cannot mistake for success
		http.Error(w, "gatewaytest: cannot drop the connection", http.StatusInternalServerError)
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		http.Error(w, "gatewaytest: hijack: "+err.Error(), http.StatusInternalServerError)
		return
	}
	_ = conn.Close()
}
