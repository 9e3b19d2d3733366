package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
)

func TestStartRefusesABadLogLevelAndFlushesOnce(t *testing.T) {
	if _, _, _, err := Start(context.Background(), Config{LogLevel: "loud", LogFormat: "json"}, "svc"); err == nil || !strings.Contains(err.Error(), "loud") {
		t.Fatalf("Start with log level %q: err = %v, want it named", "loud", err)
	}
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	logger, tel, flush, err := Start(context.Background(), Config{LogLevel: "info", LogFormat: "text"}, "svc")
	if err != nil || logger == nil || tel == nil || flush == nil {
		t.Fatalf("Start = %v, %v, %v, %v", logger, tel, flush != nil, err)
	}
	flush()
}

// After Start, log lines of libraries (through log/slog's default logger) and errors of the
// OpenTelemetry SDK and exporters (a collector that cannot be reached) come out as the
// service's own JSON log lines.
func TestStartRoutesLibraryAndSDKErrorsToTheJSONLog(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	defaultLogger := slog.Default()
	t.Cleanup(func() { slog.SetDefault(defaultLogger) })
	var logs bytes.Buffer
	_, _, flush, err := start(context.Background(), Config{LogLevel: "info", LogFormat: "json"}, "svc", &logs)
	if err != nil {
		t.Fatal(err)
	}
	defer flush()
	otel.Handle(errors.New("collector unreachable"))
	slog.Info("from a library")

	var lines []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 || lines[0]["msg"] != "opentelemetry" || lines[0]["error"] != "collector unreachable" || lines[1]["msg"] != "from a library" {
		t.Errorf("log lines %v; want the SDK error, then the library's line", lines)
	}
}
