// Package httpapi is the gateway's public HTTP API: POST /v1/stats takes a batch of stat
// events as a JSON array or as NDJSON and answers 202 once the stream acknowledged every
// event. Errors are RFC 9457 problem details (application/problem+json).
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/ingestapi"
	"github.com/boxscore-dev/boxscore/pkg/limits"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/auth"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/ingest"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/publish"
)

// MaxBodyBytes is the largest request body accepted: the PutRecords limit of one call.
const MaxBodyBytes = limits.IngestRequestBytes

// DefaultBodyReadTimeout is how long a request body may take to arrive when Options does not
// say: 5 MiB at about 170 KiB/s. A slower client is cut off with 408 and gives its share
// of the in-flight budget back.
const DefaultBodyReadTimeout = 30 * time.Second

// budgetStep is how much of the in-flight budget a body reserves at a time as it arrives:
// large enough to take the publisher's lock rarely, small enough that a client trickling
// its body holds little.
const budgetStep = 64 << 10

// Options configure the HTTP API.
type Options struct {
	// Auth authenticates producers; nil or disabled: every caller is anonymous.
	Auth *auth.Authenticator
	// BodyReadTimeout bounds the time from the start of a request's handling to the end of
	// its body (0: DefaultBodyReadTimeout).
	BodyReadTimeout time.Duration
	// TrustTraceContext continues a caller's traceparent; otherwise the server span is a
	// new root with a link to it (see tracetrust).
	TrustTraceContext bool
	// Propagator extracts the caller's trace context and baggage (nil: the global one).
	// The gateway passes tracetrust.Propagator, which caps baggage.
	Propagator propagation.TextMapPropagator
}

// NewHandler returns the public HTTP API, traced with otelhttp.
func NewHandler(svc *ingest.Service, logger *slog.Logger, opts Options) http.Handler {
	if opts.BodyReadTimeout <= 0 {
		opts.BodyReadTimeout = DefaultBodyReadTimeout
	}
	a := &api{svc: svc, logger: logger, auth: opts.Auth, bodyTimeout: opts.BodyReadTimeout}
	r := chi.NewRouter()
	r.Use(middleware.RequestID, a.logRequests, a.recoverer)
	if !opts.TrustTraceContext {
		r.Use(dropRemoteParent)
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, logger, newProblem(r, http.StatusNotFound, ingestapi.TypeNotFound, "Not Found",
			fmt.Sprintf("no resource at %s", r.URL.Path)))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, logger, newProblem(r, http.StatusMethodNotAllowed, ingestapi.TypeMethodNotAllowed, "Method Not Allowed",
			fmt.Sprintf("%s does not take %s", r.URL.Path, r.Method)))
	})
	r.Post(ingestapi.StatsPath, a.postStats)
	otelOpts := []otelhttp.Option{
		// An untrusted caller's traceparent is linked, not continued: it cannot choose the
		// trace ids stored in records nor force sampling.
		otelhttp.WithPublicEndpointFn(func(*http.Request) bool { return !opts.TrustTraceContext }),
	}
	if opts.Propagator != nil {
		otelOpts = append(otelOpts, otelhttp.WithPropagators(opts.Propagator))
	}
	return otelhttp.NewHandler(r, "ingest-gateway.http", append(otelOpts,
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			// Span names must have few values: any path of a 404 would be one more.
			if r.URL.Path == ingestapi.StatsPath {
				return r.Method + " " + ingestapi.StatsPath
			}
			return r.Method + " (unrouted)"
		}))...)
}

type api struct {
	svc         *ingest.Service
	logger      *slog.Logger
	auth        *auth.Authenticator
	bodyTimeout time.Duration
}

// requestLog collects what the handler learns for the access log line.
type requestLog struct{ events int }

type requestLogKey struct{}

func (a *api) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestLog{}
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r.WithContext(context.WithValue(r.Context(), requestLogKey{}, info)))
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelWarn
		}
		a.logger.Log(r.Context(), level, "http request",
			"method", r.Method, "path", r.URL.Path, "status", status,
			"duration_ms", float64(time.Since(start).Microseconds())/1000, "events", info.events,
			"bytes_in", r.ContentLength, "request_id", middleware.GetReqID(r.Context()))
	})
}

// dropRemoteParent makes sure a caller's span context never becomes the parent of the
// gateway's spans (and so of the trace context stored in records): otelhttp already starts
// a new root for an untrusted caller, but a tracer that ignores WithNewRoot (the no-op one,
// when tracing is off) would leave the caller's context in place.
func dropRemoteParent(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if trace.SpanContextFromContext(r.Context()).IsRemote() {
			r = r.WithContext(trace.ContextWithSpanContext(r.Context(), trace.SpanContext{}))
		}
		next.ServeHTTP(w, r)
	})
}

// recoverer turns a panic into a logged stack and a 500 problem, like chi's Recoverer but
// with a problem+json body.
func (a *api) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			rec := recover()
			if rec == nil {
				return
			}
			//nolint:errorlint // a recovered panic value, not a returned error: net/http panics with this exact value
			if rec == http.ErrAbortHandler { // net/http's way to abort a response: not ours to handle
				panic(rec)
			}
			a.logger.ErrorContext(r.Context(), "panic in HTTP handler", "panic", fmt.Sprint(rec), "stack", string(debug.Stack()))
			writeProblem(w, r, a.logger, newProblem(r, http.StatusInternalServerError, ingestapi.TypeInternal, "Internal Server Error",
				"the gateway failed unexpectedly; nothing is known about the events of this request, so retry it with the same event ids"))
		}()
		next.ServeHTTP(w, r)
	})
}

func (a *api) postStats(w http.ResponseWriter, r *http.Request) {
	// Who is sending comes first: an unauthenticated or over-quota caller learns nothing
	// else and its body is not read.
	principal, err := a.auth.Authenticate(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		a.svc.Refused(r.Context(), nil, ingest.KindUnauthenticated)
		a.writeSubmitError(w, r, &ingest.Error{Kind: ingest.KindUnauthenticated, Err: err})
		return
	}
	caller := ingest.Caller{Principal: principal}
	if err := a.svc.Admit(r.Context(), caller); err != nil {
		a.writeSubmitError(w, r, err)
		return
	}
	mediaType, problem := checkRequest(w, r)
	if problem != nil {
		writeProblem(w, r, a.logger, problem)
		return
	}
	// The in-flight budget is taken before the body is read: all of its Content-Length, or,
	// for a body of unknown length, step by step as it arrives. So the bodies being read,
	// decoded and published stay within --publish-max-inflight-bytes however many clients
	// send at once; a refused body is not read (a client sending "Expect: 100-continue"
	// never sends it). A producer holds at most its share of the budget, so its slow
	// uploads cannot take the others' room, and a body that does not arrive within the
	// read timeout is cut off with 408, giving its share back. The batch slot is taken
	// only when the batch is published.
	first := int64(budgetStep)
	if r.ContentLength >= 0 {
		first = r.ContentLength
	}
	reservation, err := a.svc.ReserveFor(principal.Producer, first)
	if err != nil {
		a.writeSubmitError(w, r, err)
		return
	}
	defer reservation.Release()
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(a.bodyTimeout)); err != nil {
		// Only a ResponseWriter that hides its connection gets here (a test recorder).
		a.logger.DebugContext(r.Context(), "body read deadline not supported", "error", err)
	}
	events, problem := a.readBatch(w, r, mediaType, reservation)
	if problem != nil {
		writeProblem(w, r, a.logger, problem)
		return
	}
	if info, ok := r.Context().Value(requestLogKey{}).(*requestLog); ok {
		info.events = len(events)
	}
	results, err := a.svc.SubmitReserved(r.Context(), reservation, caller, events)
	if err != nil {
		a.writeSubmitError(w, r, err)
		return
	}
	body := ingestapi.Accepted{Accepted: len(results), Results: make([]ingestapi.Result, len(results))}
	for i, res := range results {
		body.Results[i] = resultJSON(res)
	}
	writeJSON(w, r, a.logger, ingestapi.MediaTypeJSON, http.StatusAccepted, body)
}

// budgetReader grows a reservation ahead of the bytes read, so that what a body holds in
// memory is always within the in-flight budget.
type budgetReader struct {
	r        io.Reader
	res      *ingest.Reservation
	read     int64
	reserved int64
}

// budgetError is a body refused mid-way because the in-flight budget ran out.
type budgetError struct{ err error }

func (e *budgetError) Error() string { return e.err.Error() }
func (e *budgetError) Unwrap() error { return e.err }

func (b *budgetReader) Read(p []byte) (int, error) {
	// Never read more than is reserved: reserve the next step first.
	if b.read >= b.reserved {
		want := b.read + budgetStep
		if err := b.res.Grow(want); err != nil {
			return 0, &budgetError{err: err}
		}
		b.reserved = max(want, b.res.Bytes()) // a nil reservation (tests) holds nothing
	}
	if avail := b.reserved - b.read; int64(len(p)) > avail {
		p = p[:avail]
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	return n, err
}

// checkRequest checks what can be checked before the body is read: its media type and its
// announced length.
func checkRequest(w http.ResponseWriter, r *http.Request) (string, *ingestapi.Problem) {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mediaType != ingestapi.MediaTypeJSON && mediaType != ingestapi.MediaTypeNDJSON) {
		p := newProblem(r, http.StatusUnsupportedMediaType, ingestapi.TypeUnsupportedMediaType, "Unsupported Media Type",
			fmt.Sprintf("Content-Type %q is not supported: send %s (an array of events) or %s (one event per line)",
				r.Header.Get("Content-Type"), ingestapi.MediaTypeJSON, ingestapi.MediaTypeNDJSON))
		w.Header().Set("Accept-Post", ingestapi.MediaTypeJSON+", "+ingestapi.MediaTypeNDJSON)
		return "", p
	}
	if r.ContentLength > MaxBodyBytes {
		return "", bodyTooLarge(r)
	}
	return mediaType, nil
}

// readBatch decodes the body as mediaType says, within the size and count limits.
func (a *api) readBatch(w http.ResponseWriter, r *http.Request, mediaType string, res *ingest.Reservation) ([]*statsv1.StatEvent, *ingestapi.Problem) {
	var body io.Reader = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if r.ContentLength < 0 { // net/http stops a body with a length at its length
		body = &budgetReader{r: body, res: res, reserved: res.Bytes()}
	}
	var err error
	var events []*statsv1.StatEvent
	if mediaType == ingestapi.MediaTypeNDJSON {
		events, err = decodeNDJSON(body, ingest.MaxBatchEvents)
	} else {
		events, err = decodeJSONArray(body, ingest.MaxBatchEvents)
	}
	var maxBytes *http.MaxBytesError
	var tooMany *tooManyEventsError
	var malformed *malformedError
	var budget *budgetError
	var busy *publish.BusyError
	switch {
	case errors.As(err, &budget) && errors.As(err, &busy):
		return nil, problemFor(r, &ingest.Error{Kind: ingest.KindBusy, RetryAfter: busy.RetryAfter, Err: err})
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, newProblem(r, http.StatusRequestTimeout, ingestapi.TypeBodyTimeout, "Request Body Timeout",
			fmt.Sprintf("the request body did not arrive within %s; nothing was sent: retry it", a.bodyTimeout))
	case err == nil && len(events) == 0:
		return nil, newProblem(r, http.StatusBadRequest, ingestapi.TypeEmptyBatch, "Empty Batch", "the request has no events")
	case err == nil:
		return events, nil
	case errors.As(err, &maxBytes):
		return nil, bodyTooLarge(r)
	case errors.As(err, &tooMany):
		return nil, tooManyEvents(r, fmt.Sprintf("the request has more than %d events; split it into batches of at most %d", tooMany.limit, tooMany.limit))
	case errors.As(err, &malformed):
		p := newProblem(r, http.StatusBadRequest, ingestapi.TypeMalformedEvent, "Malformed Request Body", malformed.Error())
		if malformed.index >= 0 {
			p.Index = &malformed.index
			p.Line = malformed.line
		}
		return nil, p
	default:
		return nil, newProblem(r, http.StatusBadRequest, ingestapi.TypeUnreadableBody, "Unreadable Request Body",
			fmt.Sprintf("reading the request body failed: %v", err))
	}
}

func bodyTooLarge(r *http.Request) *ingestapi.Problem {
	return newProblem(r, http.StatusRequestEntityTooLarge, ingestapi.TypeBodyTooLarge, "Request Body Too Large",
		fmt.Sprintf("the request body is larger than %d bytes; split it into smaller batches", MaxBodyBytes))
}

func tooManyEvents(r *http.Request, detail string) *ingestapi.Problem {
	return newProblem(r, http.StatusRequestEntityTooLarge, ingestapi.TypeTooManyEvents, "Too Many Events", detail)
}

// kindProblems is the HTTP answer to each kind of failure: its status, problem type and
// title. Every kind of ingest.Kinds has one (TestEveryKindHasAnAnswer).
var kindProblems = map[ingest.Kind]struct {
	status      int
	slug, title string
}{
	ingest.KindInvalid:           {http.StatusUnprocessableEntity, ingestapi.TypeInvalidEvents, "Invalid Events"},
	ingest.KindTooLarge:          {http.StatusRequestEntityTooLarge, ingestapi.TypeTooManyEvents, "Too Many Events"},
	ingest.KindBusy:              {http.StatusServiceUnavailable, ingestapi.TypeBusy, "Gateway Busy"},
	ingest.KindStreamUnavailable: {http.StatusServiceUnavailable, ingestapi.TypeStreamUnavailable, "Stream Unavailable"},
	ingest.KindStreamRejected:    {http.StatusInternalServerError, ingestapi.TypeStreamRejected, "Stream Rejected Events"},
	ingest.KindInternal:          {http.StatusInternalServerError, ingestapi.TypeInternal, "Internal Server Error"},
	ingest.KindUnauthenticated:   {http.StatusUnauthorized, ingestapi.TypeUnauthenticated, "Unauthenticated"},
	ingest.KindForbidden:         {http.StatusForbidden, ingestapi.TypeForbidden, "Forbidden"},
	ingest.KindOverQuota:         {http.StatusTooManyRequests, ingestapi.TypeQuotaExceeded, "Quota Exceeded"},
}

// problemFor is the answer to a failed Reserve or Submit. What the failure is, ingest has
// decided; this only says it in HTTP. Every answer says whether retrying is safe.
func problemFor(r *http.Request, err error) *ingestapi.Problem {
	var e *ingest.Error
	if !errors.As(err, &e) {
		e = &ingest.Error{Kind: ingest.KindInternal, Err: err}
	}
	answer, ok := kindProblems[e.Kind]
	if !ok {
		answer = kindProblems[ingest.KindInternal]
	}
	p := newProblem(r, answer.status, answer.slug, answer.title, "")
	switch e.Kind {
	case ingest.KindInvalid:
		p.Detail = fmt.Sprintf("%d violations; the batch is validated whole, so none of its events was sent: fix them and resend the whole batch", len(e.Violations))
		p.Errors = make([]ingestapi.Violation, len(e.Violations))
		for i, v := range e.Violations {
			p.Errors[i] = ingestapi.Violation{Index: v.Index, EventID: v.EventID, Field: v.Field, Reason: v.Reason, Detail: v.Detail}
		}
	case ingest.KindTooLarge:
		p.Detail = e.Error()
	case ingest.KindUnauthenticated:
		p.Detail = "send a valid credential: Authorization: Bearer <API key or token>"
	case ingest.KindForbidden:
		p.Detail = fmt.Sprintf("%d events this producer may not send (a scope it lacks, or a source it does not own); none of the batch's events was sent", len(e.Violations))
		p.Errors = make([]ingestapi.Violation, len(e.Violations))
		for i, v := range e.Violations {
			p.Errors[i] = ingestapi.Violation{Index: v.Index, EventID: v.EventID, Field: v.Field, Reason: v.Reason, Detail: v.Detail}
		}
	case ingest.KindOverQuota:
		p.RetryAfterSeconds = retryAfterSeconds(e.RetryAfter)
		p.Detail = fmt.Sprintf("the producer is over its quota of events or bytes per second; none of this request's events was sent: retry it after %d s", p.RetryAfterSeconds)
	case ingest.KindBusy:
		p.Detail = "the gateway has as many batches or bytes in flight as it may hold; none of this request's events was sent: retry it after Retry-After"
		p.RetryAfterSeconds = retryAfterSeconds(e.RetryAfter)
	case ingest.KindStreamUnavailable:
		p.Detail = "the stream did not acknowledge every event in time; the events listed as acknowledged are stored, " +
			"the others may or may not be: retrying the whole request with the same event ids (those listed here, " +
			"including the ids the gateway assigned) is safe, as duplicates are dropped downstream"
		p.RetryAfterSeconds = retryAfterSeconds(e.RetryAfter)
		p.Acknowledged, p.NotAcknowledged = splitResults(e.Results)
	case ingest.KindStreamRejected:
		p.Detail = "the stream refused events for a reason retrying will not fix until an operator acts; the events listed as acknowledged are stored"
		p.Acknowledged, p.NotAcknowledged = splitResults(e.Results)
	default:
		p.Detail = "the gateway failed unexpectedly; retrying the whole request with the same event ids is safe"
	}
	return p
}

// writeSubmitError answers a failed Reserve or Submit.
func (a *api) writeSubmitError(w http.ResponseWriter, r *http.Request, err error) {
	p := problemFor(r, err)
	if p.Status == http.StatusUnauthorized {
		// RFC 6750: the scheme to use, and whether a token was sent and refused.
		challenge := `Bearer realm="boxscore"`
		if r.Header.Get("Authorization") != "" {
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	if p.Status >= 500 {
		a.logger.WarnContext(r.Context(), "batch not accepted", "status", p.Status, "error", err)
	}
	if r.Context().Err() != nil {
		// The client went away; the answer is written for the log's sake only.
		a.logger.InfoContext(r.Context(), "client gave up before the batch was published", "error", context.Cause(r.Context()))
	}
	writeProblem(w, r, a.logger, p)
}

func resultJSON(res ingest.Result) ingestapi.Result {
	return ingestapi.Result{Index: res.Index, EventID: res.EventID, ShardID: res.ShardID, SequenceNumber: res.SequenceNumber}
}

func splitResults(results []ingest.Result) ([]ingestapi.Result, []ingestapi.NotAcknowledged) {
	acked := []ingestapi.Result{}
	notAcked := []ingestapi.NotAcknowledged{}
	for _, res := range results {
		if res.Acknowledged() {
			acked = append(acked, resultJSON(res))
		} else {
			notAcked = append(notAcked, ingestapi.NotAcknowledged{Index: res.Index, EventID: res.EventID, ErrorCode: res.ErrorCode})
		}
	}
	return acked, notAcked
}
