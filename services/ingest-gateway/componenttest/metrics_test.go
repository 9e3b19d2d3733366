package componenttest

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ingestv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/ingest/v1"
	"github.com/boxscore-dev/boxscore/pkg/telemetry"
	"github.com/boxscore-dev/boxscore/pkg/testutil/testevents"
)

// TestGRPCServerErrorsAreExported: a PutStats the gateway fails (Kinesis unreachable:
// Unavailable) is counted on /metrics by the series the chart's BoxscoreGatewayGRPCErrors
// alert reads: otelgrpc's rpc.server.call.duration, named as Prometheus scrapes it, with
// the method and the status code as labels. A client error (InvalidArgument) is counted
// under its own code, so the alert can leave it out.
func TestGRPCServerErrorsAreExported(t *testing.T) {
	tel, err := telemetry.Setup(t.Context(), "ingest-gateway", "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.WithoutCancel(t.Context())) })
	g := startGatewayWith(t, closedPortEndpoint(t), "unreachable", publishConfig(), tel)

	_, err = g.grpc.PutStats(t.Context(), &ingestv1.PutStatsRequest{Events: testevents.Batch(2, true)})
	if st := status.Convert(err); st.Code() != codes.Unavailable {
		t.Fatalf("gRPC code = %s, want Unavailable (%v)", st.Code(), err)
	}
	_, err = g.grpc.PutStats(t.Context(), &ingestv1.PutStatsRequest{})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument {
		t.Fatalf("empty request: gRPC code = %s, want InvalidArgument (%v)", st.Code(), err)
	}

	// otelgrpc records a call after its status is written: the client may see the status
	// first, so /metrics is read until both calls are in it (or 5 s have passed).
	var missing []string
	var body []byte
	for deadline := time.Now().Add(5 * time.Second); ; {
		resp, err := http.Get(g.adminURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		missing = missing[:0]
		for _, code := range []string{"UNAVAILABLE", "INVALID_ARGUMENT"} {
			// Labels are sorted by name in the exposition format.
			series := regexp.MustCompile(`(?m)^rpc_server_call_duration_seconds_count\{[^}]*rpc_method="boxscore\.ingest\.v1\.IngestService/PutStats"[^}]*rpc_response_status_code="` +
				code + `"[^}]*\} 1$`)
			if !series.Match(body) {
				missing = append(missing, code)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, code := range missing {
		t.Errorf("/metrics has no rpc_server_call_duration_seconds_count of PutStats with rpc_response_status_code=%q and count 1:\n%s",
			code, grep(body, "rpc_server_call_duration_seconds_count"))
	}
}

// grep returns the lines of body that contain s.
func grep(body []byte, s string) string {
	var out []byte
	for _, line := range regexp.MustCompile(`(?m)^.*`+regexp.QuoteMeta(s)+`.*$`).FindAll(body, -1) {
		out = append(append(out, line...), '\n')
	}
	return string(out)
}
