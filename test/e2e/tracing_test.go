package e2e

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	collectormetricsv1 "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	collectortracev1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"

	"github.com/boxscore-dev/boxscore/test/stack"
)

// collectedSpan is a span as an OTLP receiver got it, with the service that sent it.
type collectedSpan struct {
	service string
	span    *tracev1.Span
}

func (s collectedSpan) traceID() string { return hex.EncodeToString(s.span.GetTraceId()) }
func (s collectedSpan) spanID() string  { return hex.EncodeToString(s.span.GetSpanId()) }

func (s collectedSpan) attr(key string) string {
	for _, kv := range s.span.GetAttributes() {
		if kv.GetKey() == key {
			if v := kv.GetValue().GetStringValue(); v != "" {
				return v
			}
			return fmt.Sprint(kv.GetValue().GetIntValue())
		}
	}
	return ""
}

func (s collectedSpan) String() string {
	return fmt.Sprintf("%s %q %s trace %s span %s parent %x", s.service, s.span.GetName(), s.span.GetKind(),
		s.traceID(), s.spanID(), s.span.GetParentSpanId())
}

// collector is an OTLP/gRPC receiver (the official generated protocol) keeping every span
// and the names of the metrics each service pushed, in memory.
type collector struct {
	collectortracev1.UnimplementedTraceServiceServer

	mu      sync.Mutex
	spans   []collectedSpan
	metrics map[string]map[string]bool // service -> metric names
}

func (c *collector) Export(_ context.Context, req *collectortracev1.ExportTraceServiceRequest) (*collectortracev1.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				c.spans = append(c.spans, collectedSpan{service: service, span: sp})
			}
		}
	}
	return &collectortracev1.ExportTraceServiceResponse{}, nil
}

// metricsService adapts the collector to the metrics service, whose Export has another
// signature than the trace service's.
type metricsService struct {
	collectormetricsv1.UnimplementedMetricsServiceServer
	c *collector
}

func (m metricsService) Export(_ context.Context, req *collectormetricsv1.ExportMetricsServiceRequest) (*collectormetricsv1.ExportMetricsServiceResponse, error) {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	for _, rm := range req.GetResourceMetrics() {
		service := ""
		for _, kv := range rm.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		if m.c.metrics[service] == nil {
			m.c.metrics[service] = map[string]bool{}
		}
		for _, sm := range rm.GetScopeMetrics() {
			for _, metric := range sm.GetMetrics() {
				m.c.metrics[service][metric.GetName()] = true
			}
		}
	}
	return &collectormetricsv1.ExportMetricsServiceResponse{}, nil
}

func (c *collector) snapshot() []collectedSpan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]collectedSpan(nil), c.spans...)
}

func (c *collector) pushed(service, metric string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.metrics[service][metric]
}

// startCollector serves OTLP/gRPC on a free port and returns its endpoint URL.
func startCollector(t *testing.T) (*collector, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{metrics: map[string]map[string]bool{}}
	srv := grpc.NewServer()
	collectortracev1.RegisterTraceServiceServer(srv, c)
	collectormetricsv1.RegisterMetricsServiceServer(srv, metricsService{c: c})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return c, "http://" + lis.Addr().String()
}

// eventTrace is what the test finds of one event's trace among the collected spans.
type eventTrace struct {
	gatewaySpans []collectedSpan // in the event's own trace
	publish      collectedSpan   // the producing span the record's envelope names
	batch        collectedSpan   // the consumer's batch span linking to it
	batchSpans   []collectedSpan // every span of the batch's trace
}

// findEventTrace looks for the spans of the event whose trace is traceID: the gateway's
// spans in that trace, and the consumer batch that links to its publish span, with every
// span of the batch's trace. It reports what is still missing.
func findEventTrace(spans []collectedSpan, traceID string) (eventTrace, string) {
	var et eventTrace
	for _, s := range spans {
		if s.traceID() == traceID && s.service == stack.Gateway {
			et.gatewaySpans = append(et.gatewaySpans, s)
			if s.span.GetKind() == tracev1.Span_SPAN_KIND_PRODUCER {
				et.publish = s
			}
		}
	}
	if et.publish.span == nil {
		return et, "the gateway's publish (PRODUCER) span"
	}
	for _, s := range spans {
		if s.service != stack.Consumer || s.span.GetKind() != tracev1.Span_SPAN_KIND_CONSUMER {
			continue
		}
		for _, l := range s.span.GetLinks() {
			if hex.EncodeToString(l.GetTraceId()) == traceID && hex.EncodeToString(l.GetSpanId()) == et.publish.spanID() {
				et.batch = s
			}
		}
	}
	if et.batch.span == nil {
		return et, "a consumer batch span linking to the publish span"
	}
	for _, s := range spans {
		if s.traceID() == et.batch.traceID() {
			et.batchSpans = append(et.batchSpans, s)
		}
	}
	services := map[string]bool{}
	for _, s := range append(et.gatewaySpans, et.batchSpans...) {
		services[s.service] = true
	}
	for _, name := range stack.Services {
		if !services[name] {
			return et, "spans of " + name
		}
	}
	var sql bool
	for _, s := range et.batchSpans {
		if s.service == stack.Loader && s.attr("db.system.name") == "postgresql" {
			sql = true
		}
	}
	if !sql {
		return et, "the loader's SQL spans"
	}
	return et, ""
}

func TestTracingEndToEnd(t *testing.T) {
	coll, endpoint := startCollector(t)
	// The services inherit the test's environment: the standard OTEL_* variables are all
	// it takes to point them at a collector.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_TRACES_SAMPLER", "always_on")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
	t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "500")
	t.Setenv("OTEL_SERVICE_NAME", "") // each service names itself
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_METRICS_EXPORTER", "")

	// The client here is trusted to continue its trace: the gateway's default (an untrusted
	// producer's traceparent linked, not continued) has its own tests in the gateway.
	s := stack.NewPipeline(t, stack.PipelineConfig{Shards: 2, Config: stack.Config{
		Env: map[string][]string{stack.Gateway: {"--trust-trace-context"}},
	}})
	s.StartAll()
	streamName := s.Stream

	// Two requests of one game of 4 players, two in each shard.
	players := stack.PlayersOverShards(t, s.Kinesis, s.Stream, 660000, 2)
	lines := season(rand.New(rand.NewPCG(6, 6)), players, 2)
	first, second := lines[:len(players)], lines[len(players):]
	// The first request continues a trace the client started (its traceparent header); the
	// second starts none, so the gateway's server span starts the trace.
	clientTrace := "4bf92f3577b34da6a3ce929d0e0e4736"
	led := stack.NewLedger()
	postEvents(t, stack.NewProducer(s.GatewayURL(), led), first, "00-"+clientTrace+"-00f067aa0ba902b7-01")
	postEvents(t, stack.NewProducer(s.GatewayURL(), led), second, "")

	var stored map[string]stack.Row // event id -> fact row
	s.WaitFor(30*time.Second, "every event's row", func() bool {
		stored = s.Rows()
		return len(stored) >= len(lines)
	})
	s.AssertEveryShardUsed(led)

	// Every row stores the trace id of the request that produced it: the client's for the
	// first request, the gateway's server span's for the second.
	for i, l := range lines {
		got := stored[l.EventID].TraceID
		if len(got) != 32 || got == strings.Repeat("0", 32) {
			t.Fatalf("row of %s: trace_id %q, want a W3C trace id", l.EventID, got)
		}
		if i < len(first) && got != clientTrace {
			t.Fatalf("row of %s: trace_id %s, want the client's trace %s", l.EventID, got, clientTrace)
		}
	}
	for _, l := range second {
		if got := stored[l.EventID].TraceID; got == clientTrace || got != stored[second[0].EventID].TraceID {
			t.Fatalf("second request's row of %s: trace id %s, want the one trace of its own %s", l.EventID, got, stored[second[0].EventID].TraceID)
		}
	}

	// Each event's spans come from all four services: the gateway's in the event's trace,
	// the consumer's, transformer's and loader's (with its SQL) in the trace of the batch
	// span that links to the event's publish span.
	for _, l := range []stack.Line{first[0], second[0]} {
		traceID := stored[l.EventID].TraceID
		var et eventTrace
		var missing string
		deadline := time.Now().Add(15 * time.Second)
		for {
			if et, missing = findEventTrace(coll.snapshot(), traceID); missing == "" {
				break
			}
			if time.Now().After(deadline) {
				for _, sp := range coll.snapshot() {
					t.Log(sp)
				}
				t.Fatalf("event %s (trace %s): no %s among %d spans", l.EventID, traceID, missing, len(coll.snapshot()))
			}
			time.Sleep(200 * time.Millisecond)
		}
		var server bool
		for _, sp := range et.gatewaySpans {
			if sp.span.GetKind() == tracev1.Span_SPAN_KIND_SERVER && sp.span.GetName() == "POST /v1/stats" {
				server = true
			}
		}
		if !server {
			t.Errorf("event %s: no gateway SERVER span \"POST /v1/stats\" in its trace: %v", l.EventID, et.gatewaySpans)
		}
		b := et.batch
		if b.span.GetName() != "process "+streamName || b.attr("messaging.system") != "aws_kinesis" ||
			b.attr("messaging.destination.name") != streamName || b.attr("messaging.operation.type") != "process" {
			t.Errorf("batch span %v attributes %v: want messaging conventions for %s", b, b.span.GetAttributes(), streamName)
		}
		if n, _ := strconv.Atoi(b.attr("messaging.batch.message_count")); n < 1 {
			t.Errorf("batch span: messaging.batch.message_count %q", b.attr("messaging.batch.message_count"))
		}
		// The transformer's and the loader's server spans hang under the batch span (through
		// the consumer's gRPC client spans).
		byID := map[string]collectedSpan{}
		for _, sp := range et.batchSpans {
			byID[sp.spanID()] = sp
		}
		for _, service := range []string{stack.Transformer, stack.Loader} {
			var under bool
			for _, sp := range et.batchSpans {
				if sp.service == service && sp.span.GetKind() == tracev1.Span_SPAN_KIND_SERVER && descends(sp, b, byID) {
					under = true
				}
			}
			if !under {
				t.Errorf("event %s: no %s SERVER span under the batch span %v", l.EventID, service, b)
			}
		}
	}

	// Metrics: the freshness histogram of the loader and the per-shard lag of the consumer
	// are on /metrics with sane values, and the loader pushed them over OTLP too.
	m := s.Scrape(stack.Loader)
	count := metricValue(t, m, "boxscore_loader_freshness_seconds_count")
	sum := metricValue(t, m, "boxscore_loader_freshness_seconds_sum")
	if count < float64(len(lines)) || sum <= 0 || sum >= 60 {
		t.Fatalf("freshness histogram: count %v sum %v s; want at least %d rows, all together fresher than a minute", count, sum, len(lines))
	}
	m = s.Scrape(stack.Consumer)
	for _, shard := range []string{"shardId-000000000000", "shardId-000000000001"} {
		lag := metricValue(t, m, "boxscore_consumer_millis_behind_latest_milliseconds", `shard_id="`+shard+`"`)
		if lag < 0 || lag > 60_000 {
			t.Errorf("lag of %s = %v ms", shard, lag)
		}
	}
	s.WaitFor(10*time.Second, "the loader's freshness histogram over OTLP", func() bool {
		return coll.pushed(stack.Loader, "boxscore.loader.freshness")
	})
}

// descends reports whether span is a descendant of ancestor, within one trace.
func descends(span, ancestor collectedSpan, byID map[string]collectedSpan) bool {
	for hops := 0; hops < 16; hops++ {
		parent := hex.EncodeToString(span.span.GetParentSpanId())
		if parent == ancestor.spanID() {
			return true
		}
		next, ok := byID[parent]
		if !ok {
			return false
		}
		span = next
	}
	return false
}

// postEvents POSTs lines once with the traceparent header (none when empty), requiring a
// 202 for every event.
func postEvents(t *testing.T, p *stack.Producer, lines []stack.Line, traceparent string) {
	t.Helper()
	a, err := p.Send(context.Background(), lines, stack.PostOptions{Traceparent: traceparent})
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != http.StatusAccepted {
		t.Fatalf("POST /v1/stats: %d %s", a.Status, a.Body)
	}
}

// metricValue returns the value of the one sample of name with every label fragment,
// failing the test unless there is exactly one.
func metricValue(t *testing.T, m stack.Metrics, name string, labels ...string) float64 {
	t.Helper()
	if samples := m.Samples(name, labels...); len(samples) != 1 {
		t.Fatalf("samples %s%v in /metrics: %q, want one", name, labels, samples)
	}
	return m.Sum(name, labels...)
}
