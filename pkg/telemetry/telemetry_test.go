package telemetry

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// clearOTLPEnv unsets what the machine may have set, for the test's duration.
func clearOTLPEnv(t *testing.T) {
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_SERVICE_NAME",
		"OTEL_RESOURCE_ATTRIBUTES", PodNameEnv, PodNamespaceEnv} {
		t.Setenv(k, "")
	}
}

func TestSetupChoosesExportersFromTheEnvironment(t *testing.T) {
	cases := []struct {
		name                 string
		env                  map[string]string
		wantSpans, wantMetrs string
		wantErr              string
	}{
		{name: "nothing configured", env: nil},
		{name: "one endpoint, grpc", env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			wantSpans: ProtocolGRPC, wantMetrs: ProtocolGRPC},
		{name: "default protocol is http/protobuf", env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
			wantSpans: ProtocolHTTPProtobuf, wantMetrs: ProtocolHTTPProtobuf},
		{name: "traces endpoint only", env: map[string]string{
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"},
			wantSpans: ProtocolHTTPProtobuf},
		{name: "per-signal protocol wins", env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
			"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf"},
			wantSpans: ProtocolGRPC, wantMetrs: ProtocolHTTPProtobuf},
		{name: "exporters none", env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}},
		{name: "unknown protocol", env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
			wantErr: "http/json"},
		{name: "unsupported exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: "zipkin"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clearOTLPEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			tel, err := Setup(context.Background(), "svc", "v1")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Setup error %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				// Nothing listens at the endpoints: do not wait for the final export.
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				_ = tel.Shutdown(ctx)
			})
			if tel.SpanExporter != tc.wantSpans || tel.MetricExporter != tc.wantMetrs {
				t.Fatalf("span exporter %q, metric exporter %q; want %q and %q", tel.SpanExporter, tel.MetricExporter, tc.wantSpans, tc.wantMetrs)
			}
		})
	}
}

func TestResourceNamesTheServiceAndThePod(t *testing.T) {
	clearOTLPEnv(t)
	t.Setenv(PodNameEnv, "loader-7d9f-abcde")
	t.Setenv(PodNamespaceEnv, "boxscore")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
	res, err := newResource(context.Background(), "loader", "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range res.Attributes() {
		got[string(kv.Key)] = kv.Value.String()
	}
	want := map[string]string{
		string(semconv.ServiceNameKey): "loader", string(semconv.ServiceVersionKey): "1.2.3",
		string(semconv.K8SPodNameKey): "loader-7d9f-abcde", string(semconv.K8SNamespaceNameKey): "boxscore",
		"deployment.environment.name": "test",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("resource %s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}

	// OTEL_SERVICE_NAME is the operator's last word on the name.
	t.Setenv("OTEL_SERVICE_NAME", "loader-canary")
	res, err = newResource(context.Background(), "loader", "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := res.Set().Value(semconv.ServiceNameKey); v.AsString() != "loader-canary" {
		t.Fatalf("service.name = %q with OTEL_SERVICE_NAME set, want loader-canary", v.AsString())
	}
}

func TestMetricsHandlerServesOTelInstruments(t *testing.T) {
	clearOTLPEnv(t)
	tel, err := Setup(context.Background(), "svc", "v1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	counter, err := otel.Meter("test").Int64Counter("boxscore.test.things")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(context.Background(), 3)
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if !strings.Contains(string(body), "boxscore_test_things_total") || !strings.Contains(string(body), "go_goroutines") {
		t.Fatalf("/metrics lacks the counter or the Go collector:\n%.2000s", body)
	}
}
