// Package telemetry sets up logs, traces and metrics the same way in every service:
// log/slog JSON with trace ids, OpenTelemetry providers configured by the standard OTEL_*
// environment variables, and metrics exposed for Prometheus on the admin port.
package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// Config is the telemetry part of a service's configuration.
type Config struct {
	LogLevel  string `name:"log-level" env:"BOXSCORE_LOG_LEVEL" default:"info" enum:"debug,info,warn,error" help:"Minimum log level (debug, info, warn, error)."`
	LogFormat string `name:"log-format" env:"BOXSCORE_LOG_FORMAT" default:"json" enum:"json,text" help:"Log format (json, text)."`
}

// NewLogger returns a logger writing to w in the configured format. Records logged with a
// context that carries a span get its trace_id and span_id.
func NewLogger(cfg Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", cfg.LogLevel, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch strings.ToLower(cfg.LogFormat) {
	case "", "json":
		h = slog.NewJSONHandler(w, opts)
	case "text":
		h = slog.NewTextHandler(w, opts)
	default:
		return nil, fmt.Errorf("log format %q: want json or text", cfg.LogFormat)
	}
	return slog.New(traceHandler{h}), nil
}

// traceHandler adds the trace and span ids of the context's span to every record.
type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}
