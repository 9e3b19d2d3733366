// Package componenttest drives the whole gateway (HTTP API, gRPC API, admin server,
// publisher) against a real kinesalite, and reads the stream back to check what arrived.
package componenttest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	ingestv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/ingest/v1"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/ingestapi"
	"github.com/boxscore-dev/boxscore/pkg/server"
	"github.com/boxscore-dev/boxscore/pkg/stream"
	"github.com/boxscore-dev/boxscore/pkg/telemetry"
	"github.com/boxscore-dev/boxscore/pkg/testutil/flakystream"
	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/pkg/testutil/streamtest"
	"github.com/boxscore-dev/boxscore/pkg/testutil/testevents"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/auth"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/grpcapi"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/httpapi"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/ingest"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/publish"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/quota"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/readiness"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/tracetrust"
)

// uuidV7 matches the ids the gateway assigns.
var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func publishConfig() publish.Config {
	return publish.Config{
		RetryBudget:        500 * time.Millisecond,
		AttemptTimeout:     300 * time.Millisecond,
		InitialBackoff:     10 * time.Millisecond,
		MaxBackoff:         50 * time.Millisecond,
		MaxInFlightBatches: 16,
		MaxInFlightBytes:   64 << 20,
	}
}

type gateway struct {
	kinesis  *kinesalitetest.Server
	stream   string
	flaky    *flakystream.Stream
	httpURL  string
	adminURL string
	grpcAddr string
	grpc     ingestv1.IngestServiceClient
	// publisher is the gateway's, for its in-flight high-water mark.
	publisher *publish.Publisher
}

// startGateway wires the gateway as main.go does, with the production Kinesis client (no
// SDK retries) at endpoint, behind a flakystream.Stream that fails nothing unless told to.
func startGateway(t *testing.T, endpoint, streamName string, cfg publish.Config) *gateway {
	t.Helper()
	return startGatewayWith(t, endpoint, streamName, cfg, nil)
}

// startGatewayWith is startGateway with telemetry: its meter provider, and its /metrics on
// the admin server (nil: none, as in most tests).
func startGatewayWith(t *testing.T, endpoint, streamName string, cfg publish.Config, tel *telemetry.Telemetry) *gateway {
	t.Helper()
	return startGatewayOpts(t, endpoint, streamName, cfg, gatewayOptions{tel: tel})
}

// gatewayOptions are the parts of the gateway a test may set; zero values are main.go's
// defaults with authentication off and no quota.
type gatewayOptions struct {
	tel         *telemetry.Telemetry
	auth        *auth.Authenticator
	quota       *quota.Limiter
	bodyTimeout time.Duration
	trustTrace  bool
	// grpcOptions are added to the gRPC server's (the test's own window sizes).
	grpcOptions []grpc.ServerOption
}

// startGatewayOpts wires the gateway as main.go does, with opts.
func startGatewayOpts(t testing.TB, endpoint, streamName string, cfg publish.Config, opts gatewayOptions) *gateway {
	t.Helper()
	tel := opts.tel
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	client, err := stream.NewKinesisClient(t.Context(), stream.Config{Name: streamName, Region: kinesalitetest.Region, Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	flaky := &flakystream.Stream{API: client}
	publisher, err := publish.New(flaky, streamName, cfg, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	var svcOpts []ingest.Option
	if opts.quota != nil {
		svcOpts = append(svcOpts, ingest.WithQuota(opts.quota))
	}
	svc, err := ingest.NewService(publisher, nil, svcOpts...)
	if err != nil {
		t.Fatal(err)
	}
	if opts.bodyTimeout == 0 {
		opts.bodyTimeout = httpapi.DefaultBodyReadTimeout
	}

	late := &grpcapi.LateTap{}
	srv, err := server.New(server.Config{GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second},
		logger, tel, append([]grpc.ServerOption{grpc.MaxRecvMsgSize(grpcapi.MaxRequestBytes), grpc.MaxConcurrentStreams(16), grpc.InTapHandle(late.Handle),
			grpc.MaxHeaderListSize(grpcapi.MaxHeaderBytes), grpc.ForceServerCodecV2(grpcapi.Codec{})},
			opts.grpcOptions...)...)
	if err != nil {
		t.Fatal(err)
	}
	grpcServer := grpcapi.NewServer(svc, logger, opts.auth)
	late.Set(&grpcapi.Tap{Svc: svc, Auth: opts.auth, Server: grpcServer, ReadTimeout: opts.bodyTimeout, TrustTrace: opts.trustTrace})
	ingestv1.RegisterIngestServiceServer(srv.GRPC(), grpcServer)
	srv.AddReadyCheck("stream", readiness.NewStreamCheck(client, streamName, time.Second).Check)
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("server.Run: %v", err)
		}
	})
	select {
	case <-srv.Listening():
	case err := <-runErr:
		t.Fatalf("server.Run: %v", err)
	}

	httpSrv := httptest.NewServer(httpapi.NewHandler(svc, logger, httpapi.Options{
		Auth: opts.auth, BodyReadTimeout: opts.bodyTimeout, Propagator: tracetrust.Propagator(), TrustTraceContext: opts.trustTrace,
	}))
	t.Cleanup(httpSrv.Close)

	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &gateway{stream: streamName, flaky: flaky, httpURL: httpSrv.URL, adminURL: "http://" + srv.AdminAddr(), grpcAddr: srv.GRPCAddr(),
		grpc: ingestv1.NewIngestServiceClient(conn), publisher: publisher}
}

// newGateway creates a 2-shard stream on kinesalite and a gateway writing to it.
func newGateway(t *testing.T) *gateway {
	t.Helper()
	kin := kinesalitetest.Start(t)
	name := kinesalitetest.UniqueName(t)
	kin.CreateStream(t, name, 2)
	g := startGateway(t, kin.Endpoint, name, publishConfig())
	g.kinesis = kin
	return g
}

func (g *gateway) readStream(t *testing.T) map[string]streamtest.Record {
	t.Helper()
	return streamtest.ByEventID(t, streamtest.ReadAll(t, g.kinesis.Client(t), g.stream))
}

type response struct {
	status  int
	header  http.Header
	body    []byte
	problem ingestapi.Problem
}

func (g *gateway) post(t *testing.T, contentType string, body string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, g.httpURL+"/v1/stats", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /v1/stats: %v", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: data}
	if resp.Header.Get("Content-Type") == "application/problem+json" {
		if err := json.Unmarshal(data, &r.problem); err != nil {
			t.Fatalf("problem body: %v\n%s", err, data)
		}
	}
	return r
}

// checkAccepted asserts a 202 whose results put every event in the stream, exactly once,
// where the results say, with the player as partition key.
func checkAccepted(t *testing.T, g *gateway, r response, events []*statsv1.StatEvent) []ingestapi.Result {
	t.Helper()
	if r.status != http.StatusAccepted {
		t.Fatalf("status = %d, want 202: %s", r.status, r.body)
	}
	var body ingestapi.Accepted
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("202 body: %v\n%s", err, r.body)
	}
	if body.Accepted != len(events) || len(body.Results) != len(events) {
		t.Fatalf("accepted %d with %d results, want %d", body.Accepted, len(body.Results), len(events))
	}
	inStream := g.readStream(t)
	if len(inStream) != len(events) {
		t.Errorf("the stream holds %d events, want %d", len(inStream), len(events))
	}
	for i, res := range body.Results {
		if res.Index != i || res.EventID == "" || res.ShardID == "" || res.SequenceNumber == "" {
			t.Errorf("result %d = %+v, want its index, an event id, a shard and a sequence number", i, res)
			continue
		}
		rec, ok := inStream[res.EventID]
		if !ok {
			t.Errorf("event %d (%s) is not in the stream", i, res.EventID)
			continue
		}
		if rec.ShardID != res.ShardID || rec.SequenceNumber != res.SequenceNumber {
			t.Errorf("event %d: response says %s/%s, the stream has %s/%s", i, res.ShardID, res.SequenceNumber, rec.ShardID, rec.SequenceNumber)
		}
		wantKey := strconv.FormatInt(events[i].GetPlayer().GetMlbId(), 10)
		if rec.PartitionKey != wantKey || rec.Event.GetPlayer().GetMlbId() != events[i].GetPlayer().GetMlbId() {
			t.Errorf("event %d: partition key %q and player %d, want %s", i, rec.PartitionKey, rec.Event.GetPlayer().GetMlbId(), wantKey)
		}
		if rec.Event.GetEventId() != res.EventID || rec.Envelope.GetAcceptedAt() == nil {
			t.Errorf("event %d: envelope %v does not carry the event id %s and an acceptance time", i, rec.Envelope, res.EventID)
		}
		// Normalization happened before the event went out.
		if rec.Event.GetVersion() != 1 || rec.Event.GetGame().GetSeason() != 2024 {
			t.Errorf("event %d: version %d season %d, want the normalized 1 and 2024", i, rec.Event.GetVersion(), rec.Event.GetGame().GetSeason())
		}
	}
	return body.Results
}

func TestPostJSONArray(t *testing.T) {
	g := newGateway(t)
	events := testevents.Batch(30, false)
	// Half the events carry client ids, half do not.
	for i := 0; i < len(events); i += 2 {
		events[i].EventId = "client-id-" + strconv.Itoa(i)
	}
	results := checkAccepted(t, g, g.post(t, "application/json", testevents.JSONArray(t, events)), events)
	shards := map[string]bool{}
	for i, res := range results {
		shards[res.ShardID] = true
		if i%2 == 0 && res.EventID != "client-id-"+strconv.Itoa(i) {
			t.Errorf("event %d: id %q, want the client's id kept", i, res.EventID)
		}
		if i%2 == 1 && !uuidV7.MatchString(res.EventID) {
			t.Errorf("event %d: assigned id %q is not a UUIDv7", i, res.EventID)
		}
	}
	if len(shards) < 2 {
		t.Errorf("30 players all went to one shard of two")
	}
}

func TestPostNDJSON(t *testing.T) {
	g := newGateway(t)
	events := testevents.Batch(12, true)
	body := "\n" + strings.ReplaceAll(testevents.NDJSON(t, events), "\n", "\n  \n") // blank lines are skipped
	checkAccepted(t, g, g.post(t, "application/x-ndjson", body), events)
}

func TestRetryWithSameIDsIsRecognizable(t *testing.T) {
	// The gateway does not deduplicate (that is downstream's job, by event id); what it
	// guarantees is that a resent batch carries the same ids, so downstream can.
	g := newGateway(t)
	events := testevents.Batch(3, true)
	body := testevents.JSONArray(t, events)
	for range 2 {
		if r := g.post(t, "application/json", body); r.status != http.StatusAccepted {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	}
	records := streamtest.ReadAll(t, g.kinesis.Client(t), g.stream)
	perID := map[string]int{}
	for _, r := range records {
		perID[r.Envelope.GetEventId()]++
	}
	for _, ev := range events {
		if perID[ev.GetEventId()] != 2 {
			t.Errorf("event %s is in the stream %d times after two sends, want 2 with the same id", ev.GetEventId(), perID[ev.GetEventId()])
		}
	}
}

func TestLimits(t *testing.T) {
	g := newGateway(t)
	t.Run("more than 500 events", func(t *testing.T) {
		r := g.post(t, "application/json", testevents.JSONArray(t, testevents.Batch(501, false)))
		if r.status != http.StatusRequestEntityTooLarge || r.problem.Type != "https://boxscore.dev/problems/too-many-events" {
			t.Errorf("status %d, problem %+v; want 413 too-many-events", r.status, r.problem)
		}
	})
	t.Run("more than 5 MiB", func(t *testing.T) {
		events := testevents.Batch(10, false)
		body := testevents.JSONArray(t, events[:5]) // valid JSON, then padding past the limit
		body = body[:len(body)-1] + strings.Repeat(" ", httpapi.MaxBodyBytes) + "]"
		r := g.post(t, "application/json", body)
		if r.status != http.StatusRequestEntityTooLarge || r.problem.Type != "https://boxscore.dev/problems/body-too-large" {
			t.Errorf("status %d, problem %+v; want 413 body-too-large", r.status, r.problem)
		}
	})
	if n := len(g.readStream(t)); n != 0 {
		t.Errorf("the stream holds %d events after refused requests, want none", n)
	}
}

func TestInvalidEventsSendNothing(t *testing.T) {
	g := newGateway(t)
	events := testevents.Batch(5, true)
	events[3].Batting.Hits = nil
	events[3].Game.HomeAway = statsv1.HomeAway_HOME_AWAY_UNSPECIFIED
	r := g.post(t, "application/json", testevents.JSONArray(t, events))
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("status = %d, want 422: %s", r.status, r.body)
	}
	want := map[string]bool{"batting.hits": true, "game.homeAway": true}
	for _, e := range r.problem.Errors {
		if e.Index != 3 || e.EventID != events[3].GetEventId() || !want[e.Field] {
			t.Errorf("unexpected violation %+v", e)
		}
		delete(want, e.Field)
	}
	if len(want) != 0 {
		t.Errorf("violations %v not reported: %+v", want, r.problem.Errors)
	}
	if n := len(g.readStream(t)); n != 0 {
		t.Errorf("the stream holds %d events after a 422, want none: the batch is validated whole", n)
	}
}

func TestGRPCPutStats(t *testing.T) {
	g := newGateway(t)
	events := testevents.Batch(6, false)
	events[1].EventId = "grpc-client-id"
	resp, err := g.grpc.PutStats(t.Context(), &ingestv1.PutStatsRequest{Events: events})
	if err != nil {
		t.Fatalf("PutStats: %v", err)
	}
	inStream := g.readStream(t)
	if len(resp.GetResults()) != len(events) || len(inStream) != len(events) {
		t.Fatalf("%d results and %d events in the stream, want %d", len(resp.GetResults()), len(inStream), len(events))
	}
	for i, res := range resp.GetResults() {
		rec, ok := inStream[res.GetEventId()]
		if int(res.GetIndex()) != i || !ok || rec.ShardID != res.GetShardId() || rec.SequenceNumber != res.GetSequenceNumber() {
			t.Errorf("result %d = %v; stream has %+v", i, res, rec)
		}
	}
	if resp.GetResults()[1].GetEventId() != "grpc-client-id" || !uuidV7.MatchString(resp.GetResults()[0].GetEventId()) {
		t.Errorf("ids %q and %q: want a UUIDv7 assigned and the client's id kept", resp.GetResults()[0].GetEventId(), resp.GetResults()[1].GetEventId())
	}
}

func TestGRPCInvalidArgument(t *testing.T) {
	g := newGateway(t)
	events := testevents.Batch(4, true)
	events[3].Batting.AtBats = nil
	events[0].Player.MlbId = 0
	_, err := g.grpc.PutStats(t.Context(), &ingestv1.PutStatsRequest{Events: events})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("code = %s, want InvalidArgument (%v)", st.Code(), err)
	}
	got := map[string]string{}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				got[v.GetField()] = v.GetReason()
				if v.GetDescription() == "" {
					t.Errorf("violation %v has no description", v)
				}
			}
		}
	}
	want := map[string]string{"events[3].batting.atBats": "required", "events[0].player.mlbId": "required"}
	if len(got) != len(want) {
		t.Errorf("field violations %v, want %v", got, want)
	}
	for f, reason := range want {
		if got[f] != reason {
			t.Errorf("violation of %s: reason %q, want %q (all: %v)", f, got[f], reason, got)
		}
	}
	if n := len(g.readStream(t)); n != 0 {
		t.Errorf("the stream holds %d events after INVALID_ARGUMENT, want none", n)
	}

	_, err = g.grpc.PutStats(t.Context(), &ingestv1.PutStatsRequest{Events: testevents.Batch(501, false)})
	if code := status.Code(err); code != codes.ResourceExhausted {
		t.Errorf("501 events: code %s, want ResourceExhausted (%v)", code, err)
	}
	_, err = g.grpc.PutStats(t.Context(), &ingestv1.PutStatsRequest{})
	if code := status.Code(err); code != codes.InvalidArgument {
		t.Errorf("no events: code %s, want InvalidArgument (%v)", code, err)
	}
}

// closedPortEndpoint returns an http://127.0.0.1 endpoint on which nothing listens.
func closedPortEndpoint(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + lis.Addr().String()
	if err := lis.Close(); err != nil {
		t.Fatal(err)
	}
	return endpoint
}

func TestKinesisUnreachable(t *testing.T) {
	g := startGateway(t, closedPortEndpoint(t), "unreachable", publishConfig())
	events := testevents.Batch(3, true)

	start := time.Now()
	r := g.post(t, "application/json", testevents.JSONArray(t, events))
	// Generous: this guards against ignoring the budget (waiting on the SDK's own retries or
	// timeouts), not a speed target.
	if elapsed, limit := time.Since(start), 5*publishConfig().RetryBudget+5*time.Second; elapsed > limit {
		t.Errorf("the 503 took %s, more than %s with a retry budget of %s", elapsed, limit, publishConfig().RetryBudget)
	}
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503: %s", r.status, r.body)
	}
	// The backoff of publishConfig is capped at 50ms, so its next wait rounds up to 1s.
	if got := r.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After = %q, want 1", got)
	}
	p := r.problem
	if p.Type != "https://boxscore.dev/problems/stream-unavailable" || !strings.Contains(p.Detail, "same event ids") {
		t.Errorf("problem %+v, want stream-unavailable saying a retry with the same ids is safe", p)
	}
	if len(p.Acknowledged) != 0 || len(p.NotAcknowledged) != len(events) {
		t.Errorf("acknowledged %v, not acknowledged %v; want none and all", p.Acknowledged, p.NotAcknowledged)
	}
	if !bytes.Contains(r.body, []byte(`"acknowledged":[]`)) {
		t.Errorf("body does not list the (empty) acknowledged events: %s", r.body)
	}

	_, err := g.grpc.PutStats(t.Context(), &ingestv1.PutStatsRequest{Events: events})
	st := status.Convert(err)
	if st.Code() != codes.Unavailable {
		t.Fatalf("gRPC code = %s, want Unavailable (%v)", st.Code(), err)
	}
	var retry *errdetails.RetryInfo
	var partial *ingestv1.PutStatsResponse
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.RetryInfo:
			retry = d
		case *ingestv1.PutStatsResponse:
			partial = d
		}
	}
	if retry == nil || retry.GetRetryDelay().AsDuration() != time.Second {
		t.Errorf("RetryInfo = %v, want a 1s delay", retry)
	}
	if len(partial.GetResults()) != len(events) {
		t.Fatalf("PutStatsResponse detail = %v, want every event listed", partial)
	}
	for i, res := range partial.GetResults() {
		if res.GetEventId() != events[i].GetEventId() || res.GetSequenceNumber() != "" || res.GetShardId() != "" {
			t.Errorf("detail result %d = %v, want event %s without shard or sequence number", i, res, events[i].GetEventId())
		}
	}

	resp, err := http.Get(g.adminURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d with Kinesis unreachable, want 503", resp.StatusCode)
	}
}

func TestPartialFailureReportsWhatWasAcknowledged(t *testing.T) {
	g := newGateway(t)
	events := testevents.Batch(6, true)
	stuckKey := strconv.FormatInt(events[4].GetPlayer().GetMlbId(), 10)
	g.flaky.Configure(func(f *flakystream.Stream) {
		f.FailEntries = map[string]string{stuckKey: "ProvisionedThroughputExceededException"}
		f.FailEntryCalls = -1
	})

	r := g.post(t, "application/json", testevents.JSONArray(t, events))
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q; want 503 with Retry-After: %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	p := r.problem
	if len(p.NotAcknowledged) != 1 || p.NotAcknowledged[0].Index != 4 || p.NotAcknowledged[0].EventID != events[4].GetEventId() ||
		p.NotAcknowledged[0].ErrorCode != "ProvisionedThroughputExceededException" {
		t.Errorf("not acknowledged = %+v, want only event 4 with its error", p.NotAcknowledged)
	}
	inStream := g.readStream(t)
	if len(p.Acknowledged) != 5 || len(inStream) != 5 {
		t.Fatalf("%d acknowledged and %d in the stream, want 5 and 5", len(p.Acknowledged), len(inStream))
	}
	for _, a := range p.Acknowledged {
		rec, ok := inStream[a.EventID]
		if !ok || rec.ShardID != a.ShardID || rec.SequenceNumber != a.SequenceNumber {
			t.Errorf("acknowledged %+v, stream has %+v", a, rec)
		}
	}

	// The client's retry of the whole batch, once Kinesis is well: all 6 are acknowledged
	// and the 5 that were already stored are stored again under the same ids.
	g.flaky.Configure(func(f *flakystream.Stream) { f.FailEntryCalls = 0 })
	r = g.post(t, "application/json", testevents.JSONArray(t, events))
	if r.status != http.StatusAccepted {
		t.Fatalf("retry: status %d: %s", r.status, r.body)
	}
	perID := map[string]int{}
	for _, rec := range streamtest.ReadAll(t, g.kinesis.Client(t), g.stream) {
		perID[rec.Envelope.GetEventId()]++
	}
	for i, ev := range events {
		want := 2
		if i == 4 {
			want = 1
		}
		if perID[ev.GetEventId()] != want {
			t.Errorf("event %d is in the stream %d times, want %d", i, perID[ev.GetEventId()], want)
		}
	}
}

func TestBusyGatewayAnswers503(t *testing.T) {
	kin := kinesalitetest.Start(t)
	name := kinesalitetest.UniqueName(t)
	kin.CreateStream(t, name, 2)
	cfg := publishConfig()
	cfg.MaxInFlightBatches = 2
	cfg.RetryBudget, cfg.AttemptTimeout = 10*time.Second, 10*time.Second // held until released
	g := startGateway(t, kin.Endpoint, name, cfg)
	g.kinesis = kin
	g.flaky.Configure(func(f *flakystream.Stream) { f.Block = make(chan struct{}) })

	// Two requests held in PutRecords take both in-flight slots; a third is refused at once.
	held := testevents.Batch(2, true)
	done := make(chan int, len(held))
	for _, ev := range held {
		body := testevents.JSONArray(t, []*statsv1.StatEvent{ev})
		go func() {
			// Not g.post: t.Fatal must not be called outside the test's goroutine.
			resp, err := http.Post(g.httpURL+"/v1/stats", "application/json", strings.NewReader(body))
			if err != nil {
				t.Errorf("POST: %v", err)
				done <- 0
				return
			}
			_ = resp.Body.Close()
			done <- resp.StatusCode
		}()
	}
	waitFor(t, func() bool { return len(g.flaky.Calls()) == len(held) })
	r := g.post(t, "application/x-ndjson", testevents.JSON(t, testevents.Valid(300000, 1)))
	// The held batches give their slots back when their 10s retry budget ends at the latest.
	if ra := r.header.Get("Retry-After"); r.status != http.StatusServiceUnavailable || (ra != "9" && ra != "10") || r.problem.Type != "https://boxscore.dev/problems/busy" {
		t.Errorf("status %d, Retry-After %q, problem %+v; want 503 busy with Retry-After 10 (or 9)", r.status, r.header.Get("Retry-After"), r.problem)
	}
	g.flaky.Release()
	for range held {
		if status := <-done; status != http.StatusAccepted {
			t.Errorf("a held request ended with %d, want 202 once released", status)
		}
	}
	if n := len(g.readStream(t)); n != len(held) {
		t.Errorf("the stream holds %d events, want the %d held ones and not the refused one", n, len(held))
	}
}

func TestReadyz(t *testing.T) {
	g := newGateway(t)
	resp, err := http.Get(g.adminURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz = %d with the stream ACTIVE, want 200", resp.StatusCode)
	}
	missing := startGateway(t, g.kinesis.Endpoint, g.stream+"-missing", publishConfig())
	resp, err = http.Get(missing.adminURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d without the stream, want 503", resp.StatusCode)
	}
	// What is wrong, without AWS's own text (which names the account and the stream's ARN).
	if !strings.Contains(string(body), "stream not found") || strings.Contains(string(body), "ResourceNotFoundException") || strings.Contains(string(body), "arn:") {
		t.Errorf("/readyz says %q, want the public reason \"stream not found\" and no raw AWS error", body)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
