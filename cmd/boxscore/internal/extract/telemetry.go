package extract

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/boxscore-dev/boxscore/pkg/buildinfo"
	"github.com/boxscore-dev/boxscore/pkg/telemetry"
)

// ServiceName is the extractor's service.name in traces and metrics (OTEL_SERVICE_NAME
// wins, as for the services).
const ServiceName = "boxscore-extractor"

// instrumentationScope names the tracer and the meter of the extractor.
const instrumentationScope = "github.com/boxscore-dev/boxscore/cmd/boxscore/internal/extract"

// flushTimeout bounds the export of the last spans and metrics at the end of a run: a
// collector that cannot be reached must not hold a CronJob's pod.
const flushTimeout = 5 * time.Second

// Outcomes of a game, the outcome attribute of boxscore.extractor.games.
const (
	OutcomeRead    = "read"
	OutcomeSkipped = "skipped"
	OutcomeFailed  = "failed"
)

// Kinds of skipped and failed games (SkippedGame.Kind, the reason attribute of
// boxscore.extractor.games): a small fixed set, unlike SkippedGame.Reason, which names
// dates and states.
const (
	SkipPostponed = "postponed"
	SkipCancelled = "cancelled"
	SkipSuspended = "suspended" // completed on a later day, read with that day's games
	SkipNotFinal  = "not_final" // not over yet, or its feed not final yet: a later run reads it
	FailHTTP      = "http_status"
	FailNetwork   = "network"
	FailBadData   = "bad_data" // an answer the extractor cannot map to lines
)

// Endpoints of the requests counter (boxscore.extractor.requests).
const (
	EndpointSchedule      = "schedule"
	EndpointLiveFeed      = "live_feed"
	EndpointLiveFeedAt    = "live_feed_timecode"
	EndpointTimestamps    = "timestamps"
	EndpointGameLog       = "game_log"
	EndpointIngest        = "ingest"
	EndpointOtherStatsAPI = "other"
	// RequestStatusNoAnswer is the status of a request that got no HTTP answer (network
	// error, timeout).
	RequestStatusNoAnswer = "error"
)

// Attributes of the counters.
const (
	attrOutcome  = "outcome"
	attrReason   = "reason"
	attrEndpoint = "endpoint"
	attrStatus   = "status"
)

// Attributes of the spans.
const (
	spanAttrFrom         = "boxscore.from"
	spanAttrTo           = "boxscore.to"
	spanAttrTeam         = "boxscore.team"
	spanAttrGameType     = "boxscore.game_type"
	spanAttrPost         = "boxscore.post"
	spanAttrSeason       = "boxscore.season"
	spanAttrPlayers      = "boxscore.players"
	spanAttrGamesListed  = "boxscore.games_listed"
	spanAttrGamesRead    = "boxscore.games_read"
	spanAttrGamesSkipped = "boxscore.games_skipped"
	spanAttrGamesFailed  = "boxscore.games_failed"
	spanAttrGamePk       = "boxscore.game_pk"
	spanAttrGameDate     = "boxscore.game_date"
	spanAttrStatus       = "boxscore.game_status"
	spanAttrOutcome      = "boxscore.outcome"
	spanAttrReason       = "boxscore.reason"
	spanAttrDetail       = "boxscore.reason_detail"
	spanAttrLines        = "boxscore.lines"
	spanAttrCorrections  = "boxscore.corrections"
	spanAttrEvents       = "boxscore.events"
	spanAttrAccepted     = "boxscore.accepted"
	spanAttrRejected     = "boxscore.rejected"
	spanAttrUnsettled    = "boxscore.unsettled"
)

// otlpConfigured reports whether the environment asks for OTLP export of spans or metrics:
// the variables pkg/telemetry reads. Without them the extractor installs no SDK at all:
// its spans and counters go to OpenTelemetry's no-op providers and cost nothing.
func otlpConfigured() bool {
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"} {
		if os.Getenv(name) != "" {
			return true
		}
	}
	return false
}

// StartTelemetry installs the global tracer and meter providers of pkg/telemetry (OTLP
// exporters configured by the standard OTEL_* variables, W3C trace context) when the
// environment configures an OTLP endpoint, and returns the flush to defer: it exports the
// run's last spans and metrics within flushTimeout. Errors of the SDK and the exporters (a
// collector that cannot be reached) are written to stderr; they never fail the run. When
// no endpoint is configured it installs nothing and the flush does nothing.
func StartTelemetry(ctx context.Context, stderr io.Writer) (flush func(), err error) {
	if !otlpConfigured() {
		return func() {}, nil
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		fmt.Fprintf(stderr, "telemetry: %v\n", err)
	}))
	tel, err := telemetry.Setup(ctx, ServiceName, buildinfo.String())
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	return func() {
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
		defer cancel()
		if err := tel.Shutdown(flushCtx); err != nil {
			fmt.Fprintf(stderr, "telemetry: flush: %v\n", err)
		}
	}, nil
}

// instruments are the extractor's tracer and counters, taken from the global providers
// (the no-op ones unless StartTelemetry installed the SDK).
type instruments struct {
	tracer      trace.Tracer
	games       metric.Int64Counter
	linesSent   metric.Int64Counter
	corrections metric.Int64Counter
	requests    metric.Int64Counter
}

func newInstruments() (*instruments, error) {
	meter := otel.Meter(instrumentationScope)
	in := &instruments{tracer: otel.Tracer(instrumentationScope)}
	var errs [4]error
	in.games, errs[0] = meter.Int64Counter("boxscore.extractor.games", metric.WithUnit("{game}"),
		metric.WithDescription("Games of the schedule by outcome: read (its lines extracted), skipped (postponed, cancelled, suspended, not final: reason), failed (could not be read: reason http_status, network, bad_data)."))
	in.linesSent, errs[1] = meter.Int64Counter("boxscore.extractor.lines_sent", metric.WithUnit("{line}"),
		metric.WithDescription("Batting lines posted to the ingest gateway, by outcome: accepted, rejected, unsettled (sent, not acknowledged)."))
	in.corrections, errs[2] = meter.Int64Counter("boxscore.extractor.corrections", metric.WithUnit("{line}"),
		metric.WithDescription("Lines extracted whose content changed after their game ended (official scoring changes): versioned by that change."))
	in.requests, errs[3] = meter.Int64Counter("boxscore.extractor.requests", metric.WithUnit("{request}"),
		metric.WithDescription("HTTP requests to the MLB Stats API (by endpoint) and the ingest gateway (endpoint ingest), every attempt, by status code, or error when no answer came."))
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("extractor metrics: %w", err)
	}
	return in, nil
}

// countGame adds one game of an outcome to the games counter.
func (in *instruments) countGame(ctx context.Context, outcome, reason string) {
	attrs := []attribute.KeyValue{attribute.String(attrOutcome, outcome)}
	if reason != "" {
		attrs = append(attrs, attribute.String(attrReason, reason))
	}
	in.games.Add(ctx, 1, metric.WithAttributes(attrs...))
}

// countingTransport counts every request it carries by endpoint and status.
type countingTransport struct {
	next     http.RoundTripper
	endpoint func(*http.Request) string
	requests metric.Int64Counter
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	status := RequestStatusNoAnswer
	if err == nil {
		status = strconv.Itoa(resp.StatusCode)
	}
	t.requests.Add(r.Context(), 1, metric.WithAttributes(attribute.String(attrEndpoint, t.endpoint(r)), attribute.String(attrStatus, status)))
	return resp, err
}

// statsAPITransport traces and counts the requests to the Stats API. It sends no trace
// context: the source is a third party, and the trace is ours.
func statsAPITransport(in *instruments) http.RoundTripper {
	traced := otelhttp.NewTransport(http.DefaultTransport,
		otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "GET statsapi " + statsAPIEndpoint(r) }))
	return countingTransport{next: traced, endpoint: statsAPIEndpoint, requests: in.requests}
}

// gatewayTransport traces and counts the posts to the ingest gateway, and sends the W3C
// trace context of each (traceparent, tracestate): the gateway links it to its own spans.
func gatewayTransport(in *instruments) http.RoundTripper {
	traced := otelhttp.NewTransport(http.DefaultTransport,
		otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " ingest-gateway " + r.URL.Path }))
	return countingTransport{next: traced, endpoint: func(*http.Request) string { return EndpointIngest }, requests: in.requests}
}

// statsAPIEndpoint names the Stats API endpoint of a request, a small fixed set.
func statsAPIEndpoint(r *http.Request) string {
	p := strings.TrimRight(r.URL.Path, "/")
	switch {
	case strings.HasSuffix(p, "/api/v1/schedule"):
		return EndpointSchedule
	case strings.HasSuffix(p, "/feed/live/timestamps"):
		return EndpointTimestamps
	case strings.HasSuffix(p, "/feed/live"):
		if r.URL.Query().Get("timecode") != "" {
			return EndpointLiveFeedAt
		}
		return EndpointLiveFeed
	case strings.HasSuffix(p, "/stats") && strings.Contains(p, "/api/v1/people/"):
		return EndpointGameLog
	default:
		return EndpointOtherStatsAPI
	}
}

// failureKind classifies why a game could not be read.
func failureKind(err error) string {
	var statusErr *StatusError
	var netErr net.Error
	switch {
	case errors.As(err, &statusErr):
		return FailHTTP
	case errors.As(err, &netErr):
		return FailNetwork
	default:
		return FailBadData
	}
}

// skipKind classifies a schedule entry that notPlayedHere refuses.
func skipKind(g ScheduledGame) string {
	switch g.Status.CodedGameState {
	case codedPostponed:
		return SkipPostponed
	case codedCancelled:
		return SkipCancelled
	default:
		return SkipSuspended
	}
}

// endSpan ends a span, marked as failed with err when err is not nil.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
