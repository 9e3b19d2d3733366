package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/boxscore-dev/boxscore/pkg/buildinfo"
)

// Environment variables naming the pod, set by the chart through the downward API.
const (
	PodNameEnv      = "POD_NAME"
	PodNamespaceEnv = "POD_NAMESPACE"
)

// Telemetry owns the process's OpenTelemetry providers. Code records through the global
// otel.Tracer / otel.Meter; Telemetry exists to expose metrics and to flush on shutdown.
type Telemetry struct {
	registry       *prometheus.Registry
	tracerProvider *sdktrace.TracerProvider
	meterProvider  *sdkmetric.MeterProvider
	// SpanExporter and MetricExporter name the OTLP protocol in use ("grpc",
	// "http/protobuf"), or are empty when that signal is not exported over OTLP.
	SpanExporter, MetricExporter string
}

// Setup installs global tracer and meter providers and the W3C TraceContext + Baggage
// propagator, all configured by the standard OTEL_* environment variables:
//
//   - spans go to an OTLP exporter when OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
//     OTEL_EXPORTER_OTLP_ENDPOINT is set and OTEL_TRACES_EXPORTER is not "none"; the
//     protocol is OTEL_EXPORTER_OTLP_TRACES_PROTOCOL / OTEL_EXPORTER_OTLP_PROTOCOL (grpc or
//     http/protobuf, the default), batching follows OTEL_BSP_*;
//   - sampling is OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (the SDK reads them because
//     no sampler is set here; default parentbased_always_on);
//   - metrics are always served for Prometheus (MetricsHandler) and are also pushed over
//     OTLP when OTEL_EXPORTER_OTLP_METRICS_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT is set
//     and OTEL_METRICS_EXPORTER is not "none" (interval OTEL_METRIC_EXPORT_INTERVAL);
//   - the resource is service.name and service.version, k8s.pod.name and
//     k8s.namespace.name from POD_NAME and POD_NAMESPACE when set, then
//     OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME, which win.
//
// Without an exporter spans are still created (so logs and warehouse rows carry trace
// ids, and the trace context still travels in records) but nothing is sent anywhere.
func Setup(ctx context.Context, serviceName, version string) (*Telemetry, error) {
	res, err := newResource(ctx, serviceName, version)
	if err != nil {
		return nil, err
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	promExporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	t := &Telemetry{registry: registry}
	meterOpts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(promExporter)}
	metricExporter, protocol, err := newMetricExporter(ctx)
	if err != nil {
		return nil, err
	}
	if metricExporter != nil {
		meterOpts = append(meterOpts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metricExporter)))
		t.MetricExporter = protocol
	}
	t.meterProvider = sdkmetric.NewMeterProvider(meterOpts...)

	traceOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	spanExporter, protocol, err := newSpanExporter(ctx)
	if err != nil {
		return nil, errors.Join(err, t.meterProvider.Shutdown(ctx))
	}
	if spanExporter != nil {
		traceOpts = append(traceOpts, sdktrace.WithBatcher(spanExporter))
		t.SpanExporter = protocol
	}
	t.tracerProvider = sdktrace.NewTracerProvider(traceOpts...)

	otel.SetMeterProvider(t.meterProvider)
	otel.SetTracerProvider(t.tracerProvider)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return t, nil
}

func newResource(ctx context.Context, serviceName, version string) (*resource.Resource, error) {
	attrs := []attribute.KeyValue{semconv.ServiceName(serviceName), semconv.ServiceVersion(version)}
	if pod := os.Getenv(PodNameEnv); pod != "" {
		attrs = append(attrs, semconv.K8SPodName(pod))
	}
	if ns := os.Getenv(PodNamespaceEnv); ns != "" {
		attrs = append(attrs, semconv.K8SNamespaceName(ns))
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	// The environment (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME) wins over the above.
	envRes, err := resource.New(ctx, resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("telemetry resource from OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	merged, err := resource.Merge(res, envRes)
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	return merged, nil
}

// Protocols of OTEL_EXPORTER_OTLP_PROTOCOL.
const (
	ProtocolGRPC         = "grpc"
	ProtocolHTTPProtobuf = "http/protobuf"
)

// otlpProtocol returns the OTLP protocol and whether an endpoint is configured for a
// signal ("TRACES", "METRICS"), or an error for an exporter or protocol it cannot serve.
func otlpProtocol(signal string) (protocol string, enabled bool, err error) {
	switch exporter := strings.TrimSpace(os.Getenv("OTEL_" + signal + "_EXPORTER")); exporter {
	case "none":
		return "", false, nil
	case "", "otlp":
	default:
		return "", false, fmt.Errorf("OTEL_%s_EXPORTER=%q: only otlp and none are supported", signal, exporter)
	}
	if os.Getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" {
		return "", false, nil
	}
	protocol = os.Getenv("OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch protocol {
	case "":
		return ProtocolHTTPProtobuf, true, nil // the specification's default
	case ProtocolGRPC, ProtocolHTTPProtobuf:
		return protocol, true, nil
	default:
		return "", false, fmt.Errorf("OTLP protocol %q for %s: want grpc or http/protobuf", protocol, strings.ToLower(signal))
	}
}

// newSpanExporter returns the OTLP span exporter the environment asks for, or nil. The
// exporters read the endpoint, headers, TLS, compression and timeout from the
// OTEL_EXPORTER_OTLP_* variables themselves.
func newSpanExporter(ctx context.Context) (sdktrace.SpanExporter, string, error) {
	protocol, enabled, err := otlpProtocol("TRACES")
	if err != nil || !enabled {
		return nil, "", err
	}
	var exporter sdktrace.SpanExporter
	if protocol == ProtocolGRPC {
		exporter, err = otlptracegrpc.New(ctx)
	} else {
		exporter, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, "", fmt.Errorf("OTLP span exporter (%s): %w", protocol, err)
	}
	return exporter, protocol, nil
}

// newMetricExporter returns the OTLP metric exporter the environment asks for, or nil.
func newMetricExporter(ctx context.Context) (sdkmetric.Exporter, string, error) {
	protocol, enabled, err := otlpProtocol("METRICS")
	if err != nil || !enabled {
		return nil, "", err
	}
	var exporter sdkmetric.Exporter
	if protocol == ProtocolGRPC {
		exporter, err = otlpmetricgrpc.New(ctx)
	} else {
		exporter, err = otlpmetrichttp.New(ctx)
	}
	if err != nil {
		return nil, "", fmt.Errorf("OTLP metric exporter (%s): %w", protocol, err)
	}
	return exporter, protocol, nil
}

// MetricsHandler serves the process's metrics in the Prometheus text format.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{Registry: t.registry})
}

// Shutdown flushes and stops the providers (the last batch of spans and metrics is sent).
// Call it last, after the servers stopped, so the spans of the shutdown are not lost.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	return errors.Join(t.tracerProvider.Shutdown(ctx), t.meterProvider.Shutdown(ctx))
}

// Meter returns a meter of the process's meter provider.
func (t *Telemetry) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	return t.meterProvider.Meter(name, opts...)
}

// Start does a service's telemetry start-up in order: the logger (to stderr), made the
// default of log/slog so libraries that log through it write the same JSON lines; the
// providers; and an OpenTelemetry error handler that reports SDK and exporter errors (a
// collector that cannot be reached) as log lines of that logger, not as unstructured
// output of the standard log package. Defer the returned flush first thing after, so that it runs last, once the
// servers have stopped, and the final spans and metrics are exported (within 5 s).
func Start(ctx context.Context, cfg Config, serviceName string) (*slog.Logger, *Telemetry, func(), error) {
	return start(ctx, cfg, serviceName, os.Stderr)
}

func start(ctx context.Context, cfg Config, serviceName string, logs io.Writer) (*slog.Logger, *Telemetry, func(), error) {
	logger, err := NewLogger(cfg, logs)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("logger: %w", err)
	}
	slog.SetDefault(logger)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("opentelemetry", "error", err)
	}))
	tel, err := Setup(ctx, serviceName, buildinfo.String())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("telemetry: %w", err)
	}
	flush := func() {
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(flushCtx); err != nil {
			logger.Warn("flush telemetry", "error", err)
		}
	}
	return logger, tel, flush, nil
}
