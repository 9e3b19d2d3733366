// Package ingestclient is the HTTP client of the ingest gateway's POST /v1/stats.
//
// Send turns the gateway's batch semantics into per-event outcomes. The gateway validates a
// batch whole and refuses all of it (422) when any event is invalid; Send then drops the
// invalid events, reports them as rejected with their violations, and resends the valid
// rest. Answers that mean "later" (429, 503, 5xx, network errors) are retried with capped
// exponential backoff and jitter, honouring Retry-After, within a retry budget; answers that
// retrying cannot fix (400, 401, 403, 413, 415, ...) are returned at once as a *ProblemError.
//
// With WithAPIKey every request carries "Authorization: Bearer <key>". A 401 (no or a bad
// credential) or a 403 (the producer lacks the scope or the source) is permanent: the error
// says so with the gateway's problem detail and what to check, and never contains the key.
//
// Retries are safe because events are sent with their ids: the gateway keeps a client's id
// and the warehouse keeps one line per id. For an event sent without an id, Send reuses the
// id the gateway assigned it when a 503 lists it, so a retry does not duplicate it either.
package ingestclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/boxscore-dev/boxscore/pkg/buildinfo"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/ingestapi"
)

// MaxBatchEvents is the most events the gateway takes in one request. Send splits longer
// slices into requests of at most this many events.
const MaxBatchEvents = 500

// ErrRetryBudgetExhausted is wrapped by the error of a Send whose retries ran out of budget.
var ErrRetryBudgetExhausted = errors.New("the gateway did not take the batch within the retry budget")

// Status is the outcome of one event.
type Status int

const (
	// StatusUnknown: the event was not settled. It was not sent (an earlier batch failed),
	// or it was sent and not acknowledged before Send gave up: it may or may not be stored,
	// and resending it with the same id is safe.
	StatusUnknown Status = iota
	// StatusAccepted: the stream acknowledged the event (ShardID and SequenceNumber say where).
	StatusAccepted
	// StatusRejected: the gateway found the event invalid (Violations say why); it was not sent.
	StatusRejected
)

func (s Status) String() string {
	switch s {
	case StatusAccepted:
		return "accepted"
	case StatusRejected:
		return "rejected"
	default:
		return "unknown"
	}
}

// Violation is one problem the gateway found with one field of an event.
type Violation struct {
	Field  string // protojson path, e.g. "batting.atBats"; empty for the event as a whole
	Reason string // machine-readable, e.g. "required", "duplicate", "too_large"
	Detail string // for people
}

func (v Violation) String() string {
	if v.Field == "" {
		return v.Reason + ": " + v.Detail
	}
	return v.Field + " " + v.Reason + ": " + v.Detail
}

// EventResult is the outcome of one event of a Send.
type EventResult struct {
	// EventID is the event's id: the one it was sent with, or the one the gateway assigned.
	EventID        string
	Status         Status
	ShardID        string // when accepted
	SequenceNumber string // when accepted
	Violations     []Violation
}

// Result holds the outcome of every event of a Send, in the order of the events given.
type Result struct {
	Events []EventResult
	// Requests is the number of HTTP requests made, retries and resends included.
	Requests int
}

// Count returns how many events have status s.
func (r *Result) Count(s Status) int {
	n := 0
	for _, e := range r.Events {
		if e.Status == s {
			n++
		}
	}
	return n
}

// ProblemError is an answer of the gateway other than 202.
type ProblemError struct {
	StatusCode int
	// Problem is the decoded problem body; zero when the body was not problem+json (a proxy's
	// error page, say), in which case Body holds its beginning.
	Problem ingestapi.Problem
	Body    string
	// Hint, when set, says what to check: for a 401 or 403, the credential sent.
	Hint string
}

func (e *ProblemError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "gateway answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	switch {
	case e.Problem.Detail != "":
		if e.Problem.Title != "" {
			fmt.Fprintf(&b, " (%s)", e.Problem.Title)
		}
		fmt.Fprintf(&b, ": %s", e.Problem.Detail)
	case e.Body != "":
		fmt.Fprintf(&b, ": %s", e.Body)
	}
	if e.Problem.RequestID != "" {
		fmt.Fprintf(&b, " [request %s]", e.Problem.RequestID)
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, "; %s", e.Hint)
	}
	return b.String()
}

// RetryNotice tells a WithRetryNotify callback that a request failed and will be retried.
type RetryNotice struct {
	Err  error         // why the request failed
	Wait time.Duration // how long Send waits before the next request
}

// Client posts batches to one gateway. It is safe for concurrent use.
type Client struct {
	endpoint       string
	httpClient     *http.Client
	retryBudget    time.Duration
	initialBackoff time.Duration
	maxBackoff     time.Duration
	attemptTimeout time.Duration
	userAgent      string
	apiKey         string
	notify         func(RetryNotice)
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: a client on http.DefaultTransport).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.httpClient = hc } }

// WithRetryBudget bounds the time one batch may spend in retries (default 1 minute). A wait
// the gateway asks for with Retry-After that would overrun the budget ends the retries.
func WithRetryBudget(d time.Duration) Option { return func(c *Client) { c.retryBudget = d } }

// WithBackoff sets the first wait between retries and its cap (defaults 250 ms and 10 s).
// Each wait doubles the one before, with ±50 % jitter.
func WithBackoff(initial, maxWait time.Duration) Option {
	return func(c *Client) { c.initialBackoff, c.maxBackoff = initial, maxWait }
}

// WithAttemptTimeout bounds one HTTP request (default 30 s, longer than the gateway's own
// 10 s publish budget so that its 503 answer arrives rather than a client timeout).
func WithAttemptTimeout(d time.Duration) Option { return func(c *Client) { c.attemptTimeout = d } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithAPIKey sends key as "Authorization: Bearer <key>" on every request; empty sends none.
func WithAPIKey(key string) Option { return func(c *Client) { c.apiKey = key } }

// WithRetryNotify registers a callback called before each wait between retries.
func WithRetryNotify(fn func(RetryNotice)) Option { return func(c *Client) { c.notify = fn } }

// New returns a client of the gateway at baseURL (e.g. "http://127.0.0.1:8080").
func New(baseURL string, opts ...Option) *Client {
	c := &Client{
		endpoint:       strings.TrimRight(baseURL, "/") + ingestapi.StatsPath,
		httpClient:     &http.Client{},
		retryBudget:    time.Minute,
		initialBackoff: 250 * time.Millisecond,
		maxBackoff:     10 * time.Second,
		attemptTimeout: 30 * time.Second,
		userAgent:      "boxscore-ingestclient/" + buildinfo.String(),
	}
	for _, opt := range opts {
		opt(c)
	}
	return c
}

// Send posts events in requests of at most MaxBatchEvents and returns the outcome of each.
// Invalid events are rejected and the valid rest sent; the error is non-nil only when some
// events could not be settled: a permanent answer (*ProblemError), an exhausted retry budget
// (ErrRetryBudgetExhausted) or a cancelled ctx. The Result is returned in every case and
// says what was settled before that; the events not settled have StatusUnknown.
//
// The events are not modified.
func (c *Client) Send(ctx context.Context, events []*statsv1.StatEvent) (*Result, error) {
	res := &Result{Events: make([]EventResult, len(events))}
	for i, ev := range events {
		if ev == nil {
			return res, fmt.Errorf("event %d is nil", i)
		}
		res.Events[i].EventID = ev.GetEventId()
	}
	for start := 0; start < len(events); start += MaxBatchEvents {
		end := min(start+MaxBatchEvents, len(events))
		if err := c.sendBatch(ctx, events, start, end, res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// batch is one batch being sent: the events not settled yet, as encoded lines.
type batch struct {
	events  []*statsv1.StatEvent
	res     *Result
	pending []int    // indices into events of the events still to send, in order
	lines   [][]byte // protojson of events[i], nil until encoded
}

func (b *batch) line(i int) ([]byte, error) {
	if b.lines[i] == nil {
		data, err := protojson.Marshal(b.events[i])
		if err != nil {
			return nil, fmt.Errorf("encode event %d: %w", i, err)
		}
		b.lines[i] = data
	}
	return b.lines[i], nil
}

func (b *batch) body() ([]byte, error) {
	var buf bytes.Buffer
	for _, i := range b.pending {
		line, err := b.line(i)
		if err != nil {
			return nil, err
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}

// settle records the outcome of the events at positions sent (positions in the request
// that was just sent) and removes them from pending.
func (b *batch) settle(outcomes map[int]EventResult) {
	kept := b.pending[:0]
	for pos, i := range b.pending {
		if out, ok := outcomes[pos]; ok {
			if out.EventID == "" {
				out.EventID = b.res.Events[i].EventID
			}
			b.res.Events[i] = out
			continue
		}
		kept = append(kept, i)
	}
	b.pending = kept
}

// recordPartial settles what a 503 or 500 says the stream acknowledged, and adopts the ids
// the gateway assigned to the events it did not, so that a resend carries the same ids.
func (b *batch) recordPartial(p ingestapi.Problem) {
	for _, na := range p.NotAcknowledged {
		if na.Index < 0 || na.Index >= len(b.pending) || na.EventID == "" {
			continue
		}
		i := b.pending[na.Index]
		if b.events[i].GetEventId() == "" && b.res.Events[i].EventID == "" {
			ev := proto.CloneOf(b.events[i])
			ev.EventId = na.EventID
			b.events[i] = ev
			b.lines[i] = nil
			b.res.Events[i].EventID = na.EventID
		}
	}
	acked := map[int]EventResult{}
	for _, a := range p.Acknowledged {
		if a.Index >= 0 && a.Index < len(b.pending) {
			acked[a.Index] = EventResult{EventID: a.EventID, Status: StatusAccepted, ShardID: a.ShardID, SequenceNumber: a.SequenceNumber}
		}
	}
	b.settle(acked)
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// retryableError is a failed attempt; After, when positive, is the wait the gateway asked for.
type retryableError struct {
	err   error
	after time.Duration
}

func (e *retryableError) Error() string { return e.err.Error() }

// Unwrap exposes the cause and, when the gateway asked for a wait, a
// *backoff.RetryAfterError that backoff.Retry honours instead of its own backoff.
func (e *retryableError) Unwrap() []error {
	if e.after > 0 {
		return []error{e.err, &backoff.RetryAfterError{Duration: e.after}}
	}
	return []error{e.err}
}

func (c *Client) sendBatch(ctx context.Context, events []*statsv1.StatEvent, start, end int, res *Result) error {
	b := &batch{
		events:  append([]*statsv1.StatEvent(nil), events...), // a copy: assigned ids replace clones in it
		res:     res,
		pending: make([]int, 0, end-start),
		lines:   make([][]byte, len(events)),
	}
	for i := start; i < end; i++ {
		b.pending = append(b.pending, i)
	}
	expo := &backoff.ExponentialBackOff{
		InitialInterval:     c.initialBackoff,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         c.maxBackoff,
	}
	began := time.Now()
	requestsBefore := res.Requests
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := c.attempt(ctx, b)
		var perm permanentError
		if errors.As(err, &perm) {
			return struct{}{}, backoff.Permanent(perm.error)
		}
		return struct{}{}, err
	},
		backoff.WithBackOff(expo),
		backoff.WithMaxElapsedTime(c.retryBudget),
		backoff.WithNotify(func(err error, wait time.Duration) {
			if c.notify != nil {
				c.notify(RetryNotice{Err: err, Wait: wait})
			}
		}),
	)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("send %d events: %w", len(b.pending), context.Cause(ctx))
	}
	var retryable *retryableError
	if errors.As(err, &retryable) {
		return fmt.Errorf("%w (%s): %d requests in %s, the last failed: %w", ErrRetryBudgetExhausted, c.retryBudget,
			res.Requests-requestsBefore, time.Since(began).Round(time.Millisecond), retryable.err)
	}
	return err
}

// attempt posts the pending events, and again after each 422 without the invalid events,
// until the gateway accepts them, they are all rejected, or an answer calls for a retry.
func (c *Client) attempt(ctx context.Context, b *batch) error {
	for len(b.pending) > 0 {
		body, err := b.body()
		if err != nil {
			return permanentError{err}
		}
		b.res.Requests++
		status, header, respBody, err := c.post(ctx, body)
		var perm permanentError
		switch {
		case err == nil:
		case errors.As(err, &perm) || ctx.Err() != nil:
			return permanentError{err}
		default: // a network error or a timeout of this attempt
			return &retryableError{err: err}
		}
		switch {
		case status == http.StatusAccepted:
			return b.accept(respBody)
		case status == http.StatusUnprocessableEntity:
			if err := b.reject(status, respBody); err != nil {
				return err
			}
			// The rest was refused only because of the invalid ones: resend it now.
		default:
			return c.answerError(status, header, respBody, b)
		}
	}
	return nil
}

func (b *batch) accept(respBody []byte) error {
	var body ingestapi.Accepted
	if err := json.Unmarshal(respBody, &body); err != nil {
		return permanentError{fmt.Errorf("gateway answered 202 with a body that is not the expected JSON: %w", err)}
	}
	outcomes := make(map[int]EventResult, len(body.Results))
	for _, r := range body.Results {
		if r.Index < 0 || r.Index >= len(b.pending) {
			return permanentError{fmt.Errorf("gateway answered 202 with a result for event %d of a batch of %d", r.Index, len(b.pending))}
		}
		outcomes[r.Index] = EventResult{EventID: r.EventID, Status: StatusAccepted, ShardID: r.ShardID, SequenceNumber: r.SequenceNumber}
	}
	sent := len(b.pending)
	b.settle(outcomes)
	if len(b.pending) > 0 {
		return permanentError{fmt.Errorf("gateway answered 202 with results for %d of the %d events sent", sent-len(b.pending), sent)}
	}
	return nil
}

// reject settles the events a 422 names as rejected.
func (b *batch) reject(status int, respBody []byte) error {
	pe := problemError(status, respBody)
	outcomes := map[int]EventResult{}
	for _, v := range pe.Problem.Errors {
		if v.Index < 0 || v.Index >= len(b.pending) {
			continue
		}
		out := outcomes[v.Index]
		out.Status = StatusRejected
		if out.EventID == "" {
			out.EventID = v.EventID
		}
		out.Violations = append(out.Violations, Violation{Field: v.Field, Reason: v.Reason, Detail: v.Detail})
		outcomes[v.Index] = out
	}
	if len(outcomes) == 0 {
		// Without the events named, resending would get the same answer forever.
		return permanentError{fmt.Errorf("%w, naming no event of the batch", pe)}
	}
	b.settle(outcomes)
	return nil
}

func (c *Client) answerError(status int, header http.Header, respBody []byte, b *batch) error {
	pe := problemError(status, respBody)
	pe.Hint = c.credentialHint(status)
	// 503 stream-unavailable and 500 stream-rejected say which events the stream took.
	b.recordPartial(pe.Problem)
	switch {
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		after := retryAfter(header.Get("Retry-After"), time.Now())
		if after == 0 {
			after = pe.Problem.RetryAfter()
		}
		return &retryableError{err: pe, after: after}
	case status == http.StatusInternalServerError && pe.Problem.HasType(ingestapi.TypeStreamRejected):
		// The stream refused the events for a reason only an operator can fix.
		return permanentError{pe}
	case status >= 500 || status == http.StatusRequestTimeout:
		return &retryableError{err: pe}
	default: // 400, 404, 413, 415...: the same request would get the same answer
		return permanentError{pe}
	}
}

// credentialHint says what to check after a 401 or 403; the key itself is never repeated.
func (c *Client) credentialHint(status int) string {
	switch {
	case status == http.StatusUnauthorized && c.apiKey == "":
		return "no API key was sent: give one with --api-key or BOXSCORE_API_KEY"
	case status == http.StatusUnauthorized:
		return "the API key sent was not accepted (mistyped, revoked, or for another gateway)"
	case status == http.StatusForbidden:
		return "the API key's producer may not send this: it needs the ingest scope (retract for retractions) and, when limited to sources, the event's source"
	}
	return ""
}

func problemError(status int, respBody []byte) *ProblemError {
	pe := &ProblemError{StatusCode: status}
	if err := json.Unmarshal(respBody, &pe.Problem); err != nil || pe.Problem.Status == 0 {
		pe.Problem = ingestapi.Problem{}
		body := strings.TrimSpace(string(respBody))
		if len(body) > 200 {
			body = body[:200] + "…"
		}
		pe.Body = body
	}
	return pe
}

// retryAfter parses a Retry-After value: delay seconds or an HTTP date. Zero when absent
// or unparseable.
func retryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if secs, err := strconv.Atoi(value); err == nil {
		return time.Duration(max(secs, 0)) * time.Second
	}
	if at, err := http.ParseTime(value); err == nil {
		return max(at.Sub(now), 0)
	}
	return 0
}

// maxResponseBytes bounds what is read of an answer: a 202 for 500 events is ~100 KB.
const maxResponseBytes = 8 << 20

func (c *Client) post(ctx context.Context, body []byte) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, permanentError{fmt.Errorf("build request: %w", err)}
	}
	req.Header.Set("Content-Type", ingestapi.MediaTypeNDJSON)
	req.Header.Set("Accept", ingestapi.MediaTypeJSON+", "+ingestapi.MediaTypeProblem)
	req.Header.Set("User-Agent", c.userAgent)
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("POST %s: %w", c.endpoint, err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("POST %s: read the %d answer: %w", c.endpoint, resp.StatusCode, err)
	}
	return resp.StatusCode, resp.Header, respBody, nil
}
