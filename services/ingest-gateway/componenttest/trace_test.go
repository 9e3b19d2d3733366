package componenttest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc/metadata"

	ingestv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/ingest/v1"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/pkg/testutil/testevents"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/tracetrust"
)

const (
	clientTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	// Sampled: a client asking for its trace to be recorded.
	clientTraceparent = "00-" + clientTraceID + "-00f067aa0ba902b7-01"
)

// bigBaggage is 20 members of about 80 bytes: 1.6 KB, over both caps.
func bigBaggage() string {
	members := make([]string, 20)
	for i := range members {
		members[i] = fmt.Sprintf("k%02d=%s", i, strings.Repeat("v", 76))
	}
	return strings.Join(members, ",")
}

// withSDKTracer installs an SDK tracer provider and the W3C propagators for the test, as
// telemetry.Setup does in the services (the global no-op ones make no spans of their own
// and extract nothing).
func withSDKTracer(t *testing.T) {
	t.Helper()
	prev, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	tp := sdktrace.NewTracerProvider()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	t.Cleanup(func() {
		otel.SetTracerProvider(prev)
		otel.SetTextMapPropagator(prevProp)
		_ = tp.Shutdown(context.WithoutCancel(t.Context()))
	})
}

func traceGateway(t *testing.T, trust bool) *gateway {
	t.Helper()
	kin := kinesalitetest.Start(t)
	name := kinesalitetest.UniqueName(t)
	kin.CreateStream(t, name, 2)
	g := startGatewayOpts(t, kin.Endpoint, name, publishConfig(), gatewayOptions{trustTrace: trust})
	g.kinesis = kin
	return g
}

// sendTraced sends one event over HTTP and one over gRPC, both with the client's
// traceparent and oversized baggage, and returns their records' trace contexts.
func sendTraced(t *testing.T, g *gateway) []map[string]string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, g.httpURL+"/v1/stats",
		strings.NewReader(testevents.JSONArray(t, []*statsv1.StatEvent{testevents.Valid(950001, 1)})))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", clientTraceparent)
	req.Header.Set("baggage", bigBaggage())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	ctx := metadata.AppendToOutgoingContext(t.Context(), "traceparent", clientTraceparent, "baggage", bigBaggage())
	if _, err := g.grpc.PutStats(ctx, &ingestv1.PutStatsRequest{Events: []*statsv1.StatEvent{testevents.Valid(950002, 2)}}); err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, rec := range g.readStream(t) {
		out = append(out, rec.Envelope.GetTraceContext())
	}
	if len(out) != 2 {
		t.Fatalf("%d records, want 2", len(out))
	}
	return out
}

func checkBaggageCapped(t *testing.T, tc map[string]string) {
	t.Helper()
	b, err := baggage.Parse(tc["baggage"])
	if err != nil {
		t.Fatalf("record baggage %q: %v", tc["baggage"], err)
	}
	if len(tc["baggage"]) > tracetrust.MaxBaggageBytes || b.Len() > tracetrust.MaxBaggageMembers || b.Len() == 0 {
		t.Errorf("record baggage of %d bytes and %d members, want 1 to %d members within %d bytes",
			len(tc["baggage"]), b.Len(), tracetrust.MaxBaggageMembers, tracetrust.MaxBaggageBytes)
	}
}

func TestUntrustedTraceContextIsLinkedNotContinued(t *testing.T) {
	withSDKTracer(t)
	g := traceGateway(t, false)
	for i, tc := range sendTraced(t, g) {
		tp := tc["traceparent"]
		if len(tp) != 55 || strings.Contains(tp, clientTraceID) {
			t.Errorf("record %d traceparent %q: want the gateway's own trace, not the client's %s", i, tp, clientTraceID)
		}
		checkBaggageCapped(t, tc)
	}
}

func TestTrustedTraceContextIsContinued(t *testing.T) {
	withSDKTracer(t)
	g := traceGateway(t, true)
	for i, tc := range sendTraced(t, g) {
		if !strings.Contains(tc["traceparent"], clientTraceID) {
			t.Errorf("record %d traceparent %q: want the client's trace %s continued", i, tc["traceparent"], clientTraceID)
		}
		checkBaggageCapped(t, tc)
	}
}
