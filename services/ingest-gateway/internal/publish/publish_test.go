package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
	"github.com/boxscore-dev/boxscore/pkg/stream"
	"github.com/boxscore-dev/boxscore/pkg/testutil/flakystream"
	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/pkg/testutil/streamtest"
	"github.com/boxscore-dev/boxscore/pkg/testutil/testevents"
)

func TestMain(m *testing.M) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	m.Run()
}

// fastConfig retries quickly so that tests of the retry paths take milliseconds.
func fastConfig() Config {
	return Config{
		RetryBudget:        2 * time.Second,
		AttemptTimeout:     2 * time.Second,
		InitialBackoff:     20 * time.Millisecond,
		MaxBackoff:         80 * time.Millisecond,
		MaxInFlightBatches: 8,
		MaxInFlightBytes:   MaxCallBytes,
	}
}

type fixture struct {
	server *kinesalitetest.Server
	stream string
	flaky  *flakystream.Stream
	pub    *Publisher
}

// newFixture creates a 2-shard kinesalite stream and a publisher writing to it through a
// flakystream.Stream around the production client (no SDK retries).
func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	srv := kinesalitetest.Start(t)
	name := kinesalitetest.UniqueName(t)
	srv.CreateStream(t, name, 2)
	client, err := stream.NewKinesisClient(t.Context(), stream.Config{Name: name, Region: kinesalitetest.Region, Endpoint: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	flaky := &flakystream.Stream{API: client}
	pub, err := New(flaky, name, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{server: srv, stream: name, flaky: flaky, pub: pub}
}

func (f *fixture) readStream(t *testing.T) map[string]streamtest.Record {
	t.Helper()
	return streamtest.ByEventID(t, streamtest.ReadAll(t, f.server.Client(t), f.stream))
}

// checkAcknowledgedAreInStream asserts that every acknowledged result is in the stream at
// the shard and sequence number it reports, and that nothing else is.
func checkAcknowledgedAreInStream(t *testing.T, events []*statsv1.StatEvent, results []Result, inStream map[string]streamtest.Record) {
	t.Helper()
	acked := 0
	for i, res := range results {
		if res.Index != i || res.EventID != events[i].GetEventId() {
			t.Errorf("result %d = %+v, want index %d and event id %s", i, res, i, events[i].GetEventId())
		}
		rec, ok := inStream[res.EventID]
		switch {
		case res.Acknowledged() && !ok:
			t.Errorf("event %d (%s) reported acknowledged at %s/%s but is not in the stream", i, res.EventID, res.ShardID, res.SequenceNumber)
		case res.Acknowledged():
			acked++
			if rec.ShardID != res.ShardID || rec.SequenceNumber != res.SequenceNumber {
				t.Errorf("event %d: result says %s/%s, stream has it at %s/%s", i, res.ShardID, res.SequenceNumber, rec.ShardID, rec.SequenceNumber)
			}
			if want := strconv.FormatInt(events[i].GetPlayer().GetMlbId(), 10); rec.PartitionKey != want {
				t.Errorf("event %d: partition key %q, want the player id %q", i, rec.PartitionKey, want)
			}
		case ok:
			t.Errorf("event %d (%s) is in the stream at %s/%s but was reported not acknowledged (%s)", i, res.EventID, rec.ShardID, rec.SequenceNumber, res.ErrorCode)
		}
	}
	if len(inStream) != acked {
		t.Errorf("the stream holds %d events, %d were acknowledged", len(inStream), acked)
	}
}

func TestPublishWritesEnvelopesPartitionedByPlayer(t *testing.T) {
	f := newFixture(t, fastConfig())
	events := testevents.Batch(40, true)
	// A parent span, as an incoming HTTP or gRPC request has: its trace must travel in the
	// envelopes.
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(t.Context(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled, Remote: true,
	}))
	before := time.Now()

	results, err := f.pub.Publish(ctx, events)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	inStream := f.readStream(t)
	checkAcknowledgedAreInStream(t, events, results, inStream)
	if len(inStream) != len(events) {
		t.Fatalf("stream holds %d events, want %d", len(inStream), len(events))
	}
	shards := map[string]int{}
	for i, ev := range events {
		rec := inStream[ev.GetEventId()]
		shards[rec.ShardID]++
		if rec.Envelope.GetContentType() != statevent.ContentTypeStatEventProto {
			t.Errorf("event %d: content type %q", i, rec.Envelope.GetContentType())
		}
		if got := rec.Event.GetPlayer().GetMlbId(); got != ev.GetPlayer().GetMlbId() || rec.Event.GetGame().GetGameId() != ev.GetGame().GetGameId() {
			t.Errorf("event %d: payload is player %d game %s, want %d %s", i, got, rec.Event.GetGame().GetGameId(), ev.GetPlayer().GetMlbId(), ev.GetGame().GetGameId())
		}
		acceptedAt := rec.Envelope.GetAcceptedAt().AsTime()
		if acceptedAt.Before(before.Add(-time.Second)) || acceptedAt.After(time.Now().Add(time.Second)) {
			t.Errorf("event %d: accepted_at %s is not the time of the call", i, acceptedAt)
		}
		if tp := rec.Envelope.GetTraceContext()["traceparent"]; len(tp) < 36 || tp[3:35] != traceID.String() {
			t.Errorf("event %d: traceparent %q does not carry trace %s", i, tp, traceID)
		}
	}
	if len(shards) < 2 {
		t.Errorf("40 players all went to one shard (%v): partitioning is not by player", shards)
	}
	if calls := f.flaky.Calls(); len(calls) != 1 {
		t.Errorf("made %d PutRecords calls, want 1", len(calls))
	}
}

func TestPublishResendsOnlyFailedEntries(t *testing.T) {
	f := newFixture(t, fastConfig())
	events := testevents.Batch(10, true)
	key := func(i int) string { return strconv.FormatInt(events[i].GetPlayer().GetMlbId(), 10) }
	f.flaky.FailEntries = map[string]string{
		key(2): "ProvisionedThroughputExceededException",
		key(5): "InternalFailure",
		key(7): "KMSThrottlingException",
	}
	f.flaky.FailEntryCalls = 2

	results, err := f.pub.Publish(t.Context(), events)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	calls := f.flaky.Calls()
	failedKeys := []string{key(2), key(5), key(7)}
	if len(calls) != 3 || len(calls[0]) != 10 || !slices.Equal(calls[1], failedKeys) || !slices.Equal(calls[2], failedKeys) {
		t.Fatalf("PutRecords calls = %v, want all 10 entries, then only %v twice", calls, failedKeys)
	}
	// Capped exponential backoff with jitter (factor 0.5) waits at least half the initial
	// interval before the first resend and more before the second.
	times := f.flaky.CallTimes()
	if gap := times[1].Sub(times[0]); gap < 10*time.Millisecond {
		t.Errorf("first resend came %s after the call, want a backoff of at least 10ms", gap)
	}
	if gap := times[2].Sub(times[1]); gap < 20*time.Millisecond {
		t.Errorf("second resend came %s after the first, want a backoff of at least 20ms", gap)
	}
	inStream := f.readStream(t)
	checkAcknowledgedAreInStream(t, events, results, inStream)
	if len(inStream) != len(events) {
		t.Errorf("stream holds %d events, want each of the %d once", len(inStream), len(events))
	}
}

func TestPublishBudgetExhaustedReportsWhatWasAcknowledged(t *testing.T) {
	cfg := fastConfig()
	cfg.RetryBudget = 300 * time.Millisecond
	f := newFixture(t, cfg)
	events := testevents.Batch(8, true)
	stuck := map[int]bool{1: true, 4: true}
	f.flaky.FailEntries = map[string]string{}
	for i := range stuck {
		f.flaky.FailEntries[strconv.FormatInt(events[i].GetPlayer().GetMlbId(), 10)] = "ProvisionedThroughputExceededException"
	}
	f.flaky.FailEntryCalls = -1

	start := time.Now()
	results, err := f.pub.Publish(t.Context(), events)
	elapsed := time.Since(start)

	var unavailable *UnavailableError
	if !errors.As(err, &unavailable) {
		t.Fatalf("Publish error = %v, want *UnavailableError", err)
	}
	if elapsed > cfg.RetryBudget+200*time.Millisecond {
		t.Errorf("Publish took %s with a budget of %s", elapsed, cfg.RetryBudget)
	}
	// Every call carried the stuck entries, so the calls are the attempts.
	if want := cfg.UnavailableRetryAfter(len(f.flaky.Calls())); unavailable.RetryAfter != want {
		t.Errorf("RetryAfter = %s after %d attempts, want %s", unavailable.RetryAfter, len(f.flaky.Calls()), want)
	}
	if !slices.Equal(results, unavailable.Results) {
		t.Errorf("returned results differ from the error's")
	}
	for i, res := range unavailable.Results {
		if res.Acknowledged() == stuck[i] {
			t.Errorf("event %d: acknowledged = %v, want %v (%+v)", i, res.Acknowledged(), !stuck[i], res)
		}
		if stuck[i] && res.ErrorCode != "ProvisionedThroughputExceededException" {
			t.Errorf("event %d: error code %q, want the entry's last error", i, res.ErrorCode)
		}
	}
	calls := f.flaky.Calls()
	if len(calls) < 3 {
		t.Errorf("made %d calls within the budget, want several resends", len(calls))
	}
	for _, call := range calls[1:] {
		if len(call) != len(stuck) {
			t.Errorf("a resend carried %v, want only the %d failing entries", call, len(stuck))
		}
	}
	checkAcknowledgedAreInStream(t, events, unavailable.Results, f.readStream(t))
}

func TestPublishRetriesWholeCallThrottling(t *testing.T) {
	f := newFixture(t, fastConfig())
	f.flaky.FailWholeCalls = 2
	f.flaky.WholeCallErr = flakystream.APIError("ProvisionedThroughputExceededException")
	events := testevents.Batch(5, true)

	results, err := f.pub.Publish(t.Context(), events)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if calls := f.flaky.Calls(); len(calls) != 3 {
		t.Errorf("made %d calls, want 2 throttled and 1 that went through", len(calls))
	}
	inStream := f.readStream(t)
	checkAcknowledgedAreInStream(t, events, results, inStream)
	if len(inStream) != len(events) {
		t.Errorf("stream holds %d events, want %d", len(inStream), len(events))
	}
}

func TestPublishPermanentErrorIsNotRetried(t *testing.T) {
	f := newFixture(t, fastConfig())
	// A stream that does not exist: kinesalite answers ResourceNotFoundException.
	pub, err := New(f.flaky, f.stream+"-missing", fastConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	results, err := pub.Publish(t.Context(), testevents.Batch(3, true))
	var rejected *RejectedError
	if !errors.As(err, &rejected) {
		t.Fatalf("Publish error = %v, want *RejectedError", err)
	}
	if calls := f.flaky.Calls(); len(calls) != 1 {
		t.Errorf("made %d calls, want 1: ResourceNotFoundException is permanent", len(calls))
	}
	for _, res := range results {
		if res.Acknowledged() || res.ErrorCode != "ResourceNotFoundException" {
			t.Errorf("result %+v, want not acknowledged with ResourceNotFoundException", res)
		}
	}
}

func TestPublishPermanentEntryError(t *testing.T) {
	f := newFixture(t, fastConfig())
	events := testevents.Batch(4, true)
	f.flaky.FailEntries = map[string]string{strconv.FormatInt(events[2].GetPlayer().GetMlbId(), 10): "KMSAccessDeniedException"}
	f.flaky.FailEntryCalls = -1
	results, err := f.pub.Publish(t.Context(), events)
	var rejected *RejectedError
	if !errors.As(err, &rejected) {
		t.Fatalf("Publish error = %v, want *RejectedError", err)
	}
	if calls := f.flaky.Calls(); len(calls) != 1 {
		t.Errorf("made %d calls, want 1", len(calls))
	}
	if results[2].Acknowledged() || results[2].ErrorCode != "KMSAccessDeniedException" {
		t.Errorf("event 2: %+v, want not acknowledged with KMSAccessDeniedException", results[2])
	}
	checkAcknowledgedAreInStream(t, events, results, f.readStream(t))
}

func TestPublishUnreachableStream(t *testing.T) {
	// A port that was just free: nothing listens there.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + lis.Addr().String()
	if err := lis.Close(); err != nil {
		t.Fatal(err)
	}
	client, err := stream.NewKinesisClient(t.Context(), stream.Config{Name: "nowhere", Region: "us-east-1", Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	cfg := fastConfig()
	cfg.RetryBudget = 300 * time.Millisecond
	pub, err := New(client, "nowhere", cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	results, err := pub.Publish(t.Context(), testevents.Batch(3, true))
	var unavailable *UnavailableError
	if !errors.As(err, &unavailable) {
		t.Fatalf("Publish error = %v, want *UnavailableError", err)
	}
	// Generous: this guards against ignoring the budget, not a speed target.
	if elapsed := time.Since(start); elapsed > 3*cfg.RetryBudget+5*time.Second {
		t.Errorf("Publish took %s with a budget of %s", elapsed, cfg.RetryBudget)
	}
	for _, res := range results {
		if res.Acknowledged() || res.ErrorCode == "" {
			t.Errorf("result %+v, want not acknowledged with an error code", res)
		}
	}
}

func TestPublishBusyWhenTooManyBatchesInFlight(t *testing.T) {
	cfg := fastConfig()
	cfg.MaxInFlightBatches = 1
	f := newFixture(t, cfg)
	f.flaky.Block = make(chan struct{})

	first := make(chan error, 1)
	go func() {
		_, err := f.pub.Publish(context.WithoutCancel(t.Context()), testevents.Batch(2, true))
		first <- err
	}()
	waitFor(t, func() bool { return len(f.flaky.Calls()) == 1 })

	_, err := f.pub.Publish(t.Context(), testevents.Batch(1, true))
	var busy *BusyError
	// The first batch holds its slot until its retry budget ends at the latest.
	if !errors.As(err, &busy) || busy.RetryAfter > cfg.RetryBudget || busy.RetryAfter < time.Second {
		t.Fatalf("second Publish error = %v, want *BusyError with RetryAfter within [1s, %s]", err, cfg.RetryBudget)
	}
	if calls := f.flaky.Calls(); len(calls) != 1 {
		t.Errorf("the refused batch reached Kinesis: %d calls", len(calls))
	}

	f.flaky.Release()
	if err := <-first; err != nil {
		t.Fatalf("first Publish: %v", err)
	}
	// The slot is free again.
	if _, err := f.pub.Publish(t.Context(), testevents.Batch(1, true)); err != nil {
		t.Fatalf("Publish after the first finished: %v", err)
	}
}

func TestPublishBusyWhenTooManyBytesInFlight(t *testing.T) {
	cfg := fastConfig()
	f := newFixture(t, cfg)
	// Hold all but a few bytes of the budget, as concurrent batches would.
	held, err := f.pub.Reserve(cfg.MaxInFlightBytes - 100)
	if err != nil {
		t.Fatalf("could not take the byte budget: %v", err)
	}
	_, err = f.pub.Publish(t.Context(), testevents.Batch(5, true))
	var busy *BusyError
	if !errors.As(err, &busy) {
		t.Fatalf("Publish error = %v, want *BusyError", err)
	}
	held.Release()
	if _, err := f.pub.Publish(t.Context(), testevents.Batch(5, true)); err != nil {
		t.Fatalf("Publish once bytes were released: %v", err)
	}
}

func TestSplitCallsRespectsLimits(t *testing.T) {
	sizes := []int{3 << 20, 2 << 20, 1, 1 << 20, 4 << 20, 1 << 20}
	entries := make([]entry, len(sizes))
	pending := make([]int, len(sizes))
	for i, n := range sizes {
		entries[i] = entry{data: make([]byte, n-1), key: "k"}
		pending[i] = i
	}
	got := splitCalls(pending, entries)
	want := [][]int{{0, 1}, {2, 3}, {4, 5}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("splitCalls by bytes = %v, want %v", got, want)
	}

	small := make([]entry, 1200)
	pending = make([]int, len(small))
	for i := range small {
		small[i] = entry{data: []byte("x"), key: "k"}
		pending[i] = i
	}
	got = splitCalls(pending, small)
	if len(got) != 3 || len(got[0]) != 500 || len(got[1]) != 500 || len(got[2]) != 200 {
		t.Errorf("splitCalls of 1200 entries gave calls of %d, %d, ...; want 500, 500, 200", len(got[0]), len(got[1]))
	}
}

func TestTransientClassification(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{flakystream.APIError("ProvisionedThroughputExceededException"), true},
		{flakystream.APIError("ThrottlingException"), true},
		{flakystream.APIError("InternalFailure"), true},
		{flakystream.APIError("ServiceUnavailable"), true},
		{flakystream.APIError("KMSThrottlingException"), true},
		{flakystream.APIError("ResourceNotFoundException"), false},
		{flakystream.APIError("InvalidArgumentException"), false},
		{flakystream.APIError("ValidationException"), false},
		{flakystream.APIError("AccessDeniedException"), false},
		{fmt.Errorf("put: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}), true},
		{context.DeadlineExceeded, true},
		{context.Canceled, false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := fastConfig().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	bad := fastConfig()
	bad.RetryBudget = 0
	bad.MaxBackoff = bad.InitialBackoff / 2
	bad.MaxInFlightBytes = 1024
	err := bad.Validate()
	for _, want := range []string{"retry-budget", "backoff", "inflight-bytes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
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

func TestPublishCallerGivesUp(t *testing.T) {
	f := newFixture(t, fastConfig())
	events := testevents.Batch(3, true)
	f.flaky.FailEntries = map[string]string{strconv.FormatInt(events[0].GetPlayer().GetMlbId(), 10): "InternalFailure"}
	f.flaky.FailEntryCalls = -1
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	results, err := f.pub.Publish(ctx, events)
	var unavailable *UnavailableError
	if !errors.As(err, &unavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish error = %v, want *UnavailableError caused by the caller's deadline", err)
	}
	if results[0].Acknowledged() || !results[1].Acknowledged() || !results[2].Acknowledged() {
		t.Errorf("results = %+v, want events 1 and 2 acknowledged and 0 not", results)
	}
	checkAcknowledgedAreInStream(t, events, results, f.readStream(t))
}

func TestUnavailableRetryAfterContinuesTheBackoff(t *testing.T) {
	cfg := Config{InitialBackoff: 500 * time.Millisecond, MaxBackoff: 4 * time.Second}
	for attempts, want := range map[int]time.Duration{
		0:  time.Second, // never below a second, the unit of Retry-After
		1:  time.Second,
		2:  time.Second,
		3:  2 * time.Second,
		4:  4 * time.Second,
		5:  4 * time.Second, // capped
		50: 4 * time.Second,
	} {
		if got := cfg.UnavailableRetryAfter(attempts); got != want {
			t.Errorf("after %d attempts: %s, want %s", attempts, got, want)
		}
	}
}

func TestReservationBoundsInFlightBytes(t *testing.T) {
	cfg := fastConfig()
	cfg.MaxInFlightBytes = 2 * MaxCallBytes
	f := newFixture(t, cfg)
	first, err := f.pub.Reserve(MaxCallBytes)
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.pub.Reserve(MaxCallBytes)
	if err != nil {
		t.Fatal(err)
	}
	var busy *BusyError
	if _, err := f.pub.Reserve(1); !errors.As(err, &busy) {
		t.Fatalf("a third reservation over the byte budget: %v, want *BusyError", err)
	}
	// A batch published within a reservation uses it rather than taking more.
	events := testevents.Batch(3, true)
	results, err := f.pub.PublishReserved(t.Context(), first, "", events)
	if err != nil || len(results) != 3 || !results[2].Acknowledged() {
		t.Fatalf("PublishReserved: %v, %+v", err, results)
	}
	first.Release()
	first.Release() // twice does nothing
	second.Release()
	// Everything was given back: a full budget can be reserved again.
	all, err := f.pub.Reserve(cfg.MaxInFlightBytes)
	if err != nil {
		t.Fatalf("reserving the whole budget after every release: %v", err)
	}
	all.Release()

	// A reservation smaller than the batch's records grows, within the budget.
	small, err := f.pub.Reserve(10)
	if err != nil {
		t.Fatal(err)
	}
	defer small.Release()
	if _, err := f.pub.PublishReserved(t.Context(), small, "", testevents.Batch(2, true)); err != nil {
		t.Fatalf("PublishReserved with a small reservation: %v", err)
	}
	if small.bytes <= 10 {
		t.Errorf("the reservation holds %d bytes after a larger batch, want it grown", small.bytes)
	}
}
