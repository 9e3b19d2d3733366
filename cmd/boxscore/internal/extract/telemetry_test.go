package extract

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectormetricsv1 "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	collectortracev1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/grpc"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/ingestclient/gatewaytest"
)

// recorded is what the SDK recorded of a run: its ended spans and a reader of its metrics.
type recorded struct {
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
}

// recordTelemetry installs SDK providers recording in memory as the global ones, as
// StartTelemetry installs exporting ones, and puts the previous ones back at the end.
func recordTelemetry(t *testing.T) *recorded {
	t.Helper()
	prevTP, prevMP := otel.GetTracerProvider(), otel.GetMeterProvider()
	rec := &recorded{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(rec.reader))
	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)
	t.Cleanup(func() {
		otel.SetTracerProvider(prevTP)
		otel.SetMeterProvider(prevMP)
		_ = tp.Shutdown(context.Background()) // in-memory: nothing to flush
		_ = mp.Shutdown(context.Background())
	})
	return rec
}

// noInstruments are the instruments of the global providers (no-op in most tests).
func noInstruments(t *testing.T) *instruments {
	t.Helper()
	in, err := newInstruments()
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// counter returns the sums of an Int64 counter by the attribute set's string form
// ("outcome=read", "endpoint=schedule,status=200"), and whether it was recorded at all.
func (r *recorded) counter(t *testing.T, name string) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok || !sum.IsMonotonic {
				t.Fatalf("%s is %T, want a monotonic Int64 sum", name, m.Data)
			}
			for _, dp := range sum.DataPoints {
				out[attrKey(dp.Attributes.ToSlice())] += dp.Value
			}
		}
	}
	return out
}

func attrKey(kvs []attribute.KeyValue) string {
	parts := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		parts = append(parts, string(kv.Key)+"="+kv.Value.String())
	}
	return strings.Join(parts, ",")
}

func spanAttr(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func spanString(s sdktrace.ReadOnlySpan, key string) string {
	v, _ := spanAttr(s, key)
	return v.AsString()
}

func spanInt(s sdktrace.ReadOnlySpan, key string) int64 {
	v, _ := spanAttr(s, key)
	return v.AsInt64()
}

// tracingGateway is a proxy in front of a fake gateway that keeps the traceparent of every
// request.
type tracingGateway struct {
	*httptest.Server
	mu           sync.Mutex
	traceparents []string
}

func startTracingGateway(t *testing.T, gw *gatewaytest.Gateway) *tracingGateway {
	t.Helper()
	target, err := url.Parse(gw.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	g := &tracingGateway{}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.traceparents = append(g.traceparents, r.Header.Get("traceparent"))
		g.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(g.Close)
	return g
}

// A league run is one trace: the run's span, a child per game read (with its Stats API
// requests as children, which carry no trace context to the source), a child per batch
// posted (with its HTTP posts as children, which carry it to the gateway); and the
// counters say what the summary says.
func TestLeagueRunIsTracedAndCounted(t *testing.T) {
	rec := recordTelemetry(t)
	api := newFakeStatsAPI(t)
	api.setClock(clockNight)
	gw := startTracingGateway(t, gatewaytest.Start(t))
	cmd := leagueCommand(t, api, gw.URL)
	var stdout, stderr bytes.Buffer
	if err := cmd.Run(context.Background(), &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, &stderr)
	}

	spans := rec.spans.Ended()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var runs, games, batches []sdktrace.ReadOnlySpan
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
		switch s.Name() {
		case "extract league":
			runs = append(runs, s)
		case "extract game":
			games = append(games, s)
		case "post batch":
			batches = append(batches, s)
		}
	}
	if len(runs) != 1 {
		t.Fatalf("%d run spans, want 1 (spans: %d)", len(runs), len(spans))
	}
	run := runs[0]
	if run.Parent().IsValid() {
		t.Errorf("the run's span has a parent %s", run.Parent().SpanID())
	}
	for key, want := range map[string]string{spanAttrFrom: "2024-04-10", spanAttrTo: "2024-04-11", spanAttrTeam: "all", spanAttrGameType: "R"} {
		if got := spanString(run, key); got != want {
			t.Errorf("run span %s = %q, want %q", key, got, want)
		}
	}
	for key, want := range map[string]int64{spanAttrGamesListed: 7, spanAttrGamesRead: 6, spanAttrLines: 32, spanAttrCorrections: 0, spanAttrGamesSkipped: 1, spanAttrGamesFailed: 0} {
		if v, ok := spanAttr(run, key); !ok || v.AsInt64() != want {
			t.Errorf("run span %s = %v (set %t), want %d", key, v.String(), ok, want)
		}
	}
	if run.Status().Code == codes.Error {
		t.Errorf("run span status %v", run.Status())
	}
	inTrace := func(s sdktrace.ReadOnlySpan) bool { return s.SpanContext().TraceID() == run.SpanContext().TraceID() }

	// One span per game taken from the schedule: 6 read, 746105 skipped (in progress).
	lines, requestsUnderGames := int64(0), 0
	gamePks := map[int64]string{}
	for _, g := range games {
		if !inTrace(g) || g.Parent().SpanID() != run.SpanContext().SpanID() {
			t.Errorf("game span %d is not a child of the run's span", spanInt(g, spanAttrGamePk))
		}
		gamePks[spanInt(g, spanAttrGamePk)] = spanString(g, spanAttrOutcome)
		lines += spanInt(g, spanAttrLines)
		if spanString(g, spanAttrOutcome) == OutcomeSkipped && (spanString(g, spanAttrReason) != SkipNotFinal || !strings.Contains(spanString(g, spanAttrDetail), "In Progress")) {
			t.Errorf("skipped game span %d: reason %q (%q)", spanInt(g, spanAttrGamePk), spanString(g, spanAttrReason), spanString(g, spanAttrDetail))
		}
	}
	wantGames := map[int64]string{746101: "read", 746102: "read", 746103: "read", 746104: "read", 746105: "skipped", 746106: "read", 746107: "read"}
	if len(games) != len(wantGames) || lines != 32 {
		t.Errorf("game spans %v with %d lines, want %v with 32", gamePks, lines, wantGames)
	}
	for pk, outcome := range wantGames {
		if gamePks[pk] != outcome {
			t.Errorf("game %d: span outcome %q, want %q", pk, gamePks[pk], outcome)
		}
	}
	for _, s := range spans {
		if parent, ok := byID[s.Parent().SpanID()]; ok && parent.Name() == "extract game" && strings.HasPrefix(s.Name(), "GET statsapi ") {
			requestsUnderGames++
		}
	}
	if requestsUnderGames < 6 {
		t.Errorf("%d Stats API request spans under game spans, want at least one per game read", requestsUnderGames)
	}
	for _, r := range api.requests {
		if tp := r.Header.Get("traceparent"); tp != "" {
			t.Errorf("a request to the Stats API carries trace context %q", tp)
		}
	}

	// The post: one batch of 32, its HTTP request in the run's trace, announced to the gateway.
	if len(batches) != 1 || batches[0].Parent().SpanID() != run.SpanContext().SpanID() || spanInt(batches[0], spanAttrEvents) != 32 || spanInt(batches[0], spanAttrAccepted) != 32 {
		t.Fatalf("post batch spans %v, want one child of the run with 32 events accepted", batches)
	}
	gw.mu.Lock()
	traceparents := append([]string(nil), gw.traceparents...)
	gw.mu.Unlock()
	if len(traceparents) != 1 {
		t.Fatalf("%d requests to the gateway, want 1", len(traceparents))
	}
	remote := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier{"Traceparent": {traceparents[0]}}))
	post, ok := byID[remote.SpanID()]
	if !remote.IsValid() || remote.TraceID() != run.SpanContext().TraceID() || !ok || post.Parent().SpanID() != batches[0].SpanContext().SpanID() {
		t.Errorf("the gateway got traceparent %q: want the run's trace, the span of an HTTP post under the batch", traceparents[0])
	}

	// The counters.
	if got := rec.counter(t, "boxscore.extractor.games"); len(got) != 2 || got["outcome=read"] != 6 || got["outcome=skipped,reason=not_final"] != 1 {
		t.Errorf("games %v, want read 6, skipped not_final 1", got)
	}
	if got := rec.counter(t, "boxscore.extractor.lines_sent"); len(got) != 1 || got["outcome=accepted"] != 32 {
		t.Errorf("lines_sent %v, want accepted 32", got)
	}
	if got := rec.counter(t, "boxscore.extractor.corrections"); len(got) != 0 {
		t.Errorf("corrections %v, want none", got)
	}
	requests := rec.counter(t, "boxscore.extractor.requests")
	statsAPI := int64(0)
	for key, n := range requests {
		if !strings.HasPrefix(key, "endpoint=ingest,") {
			statsAPI += n
		}
	}
	if requests["endpoint=schedule,status=200"] != 1 || requests["endpoint=ingest,status=202"] != 1 || statsAPI != int64(len(api.requests)) {
		t.Errorf("requests %v: want schedule 1, ingest 1 (answered 202), and %d to the Stats API in all", requests, len(api.requests))
	}
}

// Corrections, skipped and failed games: the afternoon re-read of 2024-04-10 finds Devers'
// line rescored, while 746106's feed answers 404; 746101 (postponed) and 746103 (suspended)
// are played and completed the next day, outside the window.
func TestLeagueRunCountsCorrectionsAndFailedGames(t *testing.T) {
	rec := recordTelemetry(t)
	api := newFakeStatsAPI(t)
	api.setClock(clockAfternoon)
	api.answerPathFirst("/api/v1.1/game/746106/feed/live", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"message":"Object not found"}`, http.StatusNotFound)
	})
	gw := gatewaytest.Start(t)
	cmd := leagueCommand(t, api, gw.URL)
	cmd.From, cmd.To = "2024-04-10", "2024-04-10"
	var stdout, stderr bytes.Buffer
	err := cmd.Run(context.Background(), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "1 games could not be read") {
		t.Fatalf("err %v, want the failed game reported", err)
	}

	if got := rec.counter(t, "boxscore.extractor.games"); len(got) != 4 || got["outcome=read"] != 1 || got["outcome=failed,reason=http_status"] != 1 ||
		got["outcome=skipped,reason=postponed"] != 1 || got["outcome=skipped,reason=suspended"] != 1 {
		t.Errorf("games %v, want read 1, failed http_status 1, skipped postponed 1 and suspended 1", got)
	}
	if got := rec.counter(t, "boxscore.extractor.corrections"); got[""] != 1 || len(got) != 1 {
		t.Errorf("corrections %v, want 1", got)
	}
	if got := rec.counter(t, "boxscore.extractor.lines_sent"); got["outcome=accepted"] != int64(len(gw.Accepted())) || len(gw.Accepted()) == 0 {
		t.Errorf("lines_sent %v, the gateway accepted %d", got, len(gw.Accepted()))
	}
	if got := rec.counter(t, "boxscore.extractor.requests"); got["endpoint=live_feed,status=404"] != 1 {
		t.Errorf("requests %v, want the live feed's 404 counted", got)
	}
	var run sdktrace.ReadOnlySpan
	failed, corrected := 0, 0
	for _, s := range rec.spans.Ended() {
		switch {
		case s.Name() == "extract league":
			run = s
		case s.Name() == "extract game" && spanInt(s, spanAttrGamePk) == 746106:
			if spanString(s, spanAttrOutcome) == OutcomeFailed && spanString(s, spanAttrReason) == FailHTTP && s.Status().Code == codes.Error {
				failed++
			}
		case s.Name() == "extract game" && spanInt(s, spanAttrGamePk) == 746102:
			if spanInt(s, spanAttrCorrections) == 1 {
				corrected++
			}
		}
	}
	if run == nil || run.Status().Code != codes.Error || spanInt(run, spanAttrGamesFailed) != 1 || spanInt(run, spanAttrCorrections) != 1 {
		t.Fatalf("run span %v: want status error, 1 game failed, 1 correction", run)
	}
	skippedEvents := map[int64]string{}
	for _, ev := range run.Events() {
		if ev.Name == "game skipped" {
			var pk int64
			var reason string
			for _, kv := range ev.Attributes {
				switch string(kv.Key) {
				case spanAttrGamePk:
					pk = kv.Value.AsInt64()
				case spanAttrReason:
					reason = kv.Value.AsString()
				}
			}
			skippedEvents[pk] = reason
		}
	}
	if len(skippedEvents) != 2 || skippedEvents[746101] != SkipPostponed || skippedEvents[746103] != SkipSuspended {
		t.Errorf("run span's skipped games %v, want 746101 postponed and 746103 suspended", skippedEvents)
	}
	if failed != 1 || corrected != 1 {
		t.Errorf("game spans: 746106 failed (http_status, error) %d times, 746102 with 1 correction %d times; want 1 each", failed, corrected)
	}
}

// otlpReceiver is an OTLP/gRPC receiver (the official generated protocol), keeping the
// names of the spans and metrics each service exports.
type otlpReceiver struct {
	collectortracev1.UnimplementedTraceServiceServer
	mu      sync.Mutex
	spans   map[string][]string
	metrics map[string][]string
}

func resourceService(attrs []*commonv1.KeyValue) string {
	for _, kv := range attrs {
		if kv.GetKey() == "service.name" {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

func (r *otlpReceiver) Export(_ context.Context, req *collectortracev1.ExportTraceServiceRequest) (*collectortracev1.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := resourceService(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				r.spans[service] = append(r.spans[service], sp.GetName())
			}
		}
	}
	return &collectortracev1.ExportTraceServiceResponse{}, nil
}

type otlpMetricsReceiver struct {
	collectormetricsv1.UnimplementedMetricsServiceServer
	r *otlpReceiver
}

func (m otlpMetricsReceiver) Export(_ context.Context, req *collectormetricsv1.ExportMetricsServiceRequest) (*collectormetricsv1.ExportMetricsServiceResponse, error) {
	m.r.mu.Lock()
	defer m.r.mu.Unlock()
	for _, rm := range req.GetResourceMetrics() {
		service := resourceService(rm.GetResource().GetAttributes())
		for _, sm := range rm.GetScopeMetrics() {
			for _, metric := range sm.GetMetrics() {
				m.r.metrics[service] = append(m.r.metrics[service], metric.GetName())
			}
		}
	}
	return &collectormetricsv1.ExportMetricsServiceResponse{}, nil
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set (as the chart sets it on the CronJob), a run exports
// its spans and counters over OTLP as boxscore-extractor, all flushed when Run returns;
// without it, nothing is installed.
func TestRunExportsOverOTLPOnlyWhenConfigured(t *testing.T) {
	prevTP, prevMP := otel.GetTracerProvider(), otel.GetMeterProvider()
	t.Cleanup(func() {
		otel.SetTracerProvider(prevTP)
		otel.SetMeterProvider(prevMP)
	})
	for _, name := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_SDK_DISABLED"} {
		t.Setenv(name, "")
	}
	api := newFakeStatsAPI(t)
	api.setClock(clockNight)
	cmd := leagueCommand(t, api, "")
	cmd.From, cmd.To = "2024-04-10", "2024-04-10"
	var stdout, stderr bytes.Buffer
	if err := cmd.Run(context.Background(), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if otel.GetTracerProvider() != prevTP || otel.GetMeterProvider() != prevMP {
		t.Fatal("without OTEL_EXPORTER_OTLP_ENDPOINT, Run installed tracer or meter providers")
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	receiver := &otlpReceiver{spans: map[string][]string{}, metrics: map[string][]string{}}
	srv := grpc.NewServer()
	collectortracev1.RegisterTraceServiceServer(srv, receiver)
	collectormetricsv1.RegisterMetricsServiceServer(srv, otlpMetricsReceiver{r: receiver})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+lis.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
	t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "3600000") // only the final flush exports
	stderr.Reset()
	started := time.Now()
	if err := cmd.Run(context.Background(), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(started); took > flushTimeout {
		t.Errorf("the run with its flush took %s", took)
	}
	receiver.mu.Lock()
	defer receiver.mu.Unlock()
	spans, metrics := strings.Join(receiver.spans[ServiceName], ","), strings.Join(receiver.metrics[ServiceName], ",")
	for _, want := range []string{"extract league", "extract game", "GET statsapi schedule"} {
		if !strings.Contains(spans, want) {
			t.Errorf("exported spans of %s: %s; want %q among them (all: %v)\nstderr: %s", ServiceName, spans, want, receiver.spans, &stderr)
		}
	}
	for _, want := range []string{"boxscore.extractor.games", "boxscore.extractor.requests"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("exported metrics of %s: %s; want %s (all: %v)", ServiceName, metrics, want, receiver.metrics)
		}
	}
}
