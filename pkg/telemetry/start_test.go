package telemetry

import (
	"context"
	"strings"
	"testing"
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
