package ingest

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/boxscore-dev/boxscore/pkg/apikey"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/testutil/testevents"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/auth"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/publish"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/quota"
)

// halfPublisher acknowledges the first half of every batch and then gives up as a throttled
// stream does.
type halfPublisher struct{}

func (halfPublisher) Reserve(int64) (*publish.Reservation, error) { return nil, &publish.BusyError{} }

func (halfPublisher) PublishReserved(_ context.Context, _ *publish.Reservation, _ string, events []*statsv1.StatEvent) ([]publish.Result, error) {
	results := make([]publish.Result, len(events))
	for i, ev := range events {
		results[i] = publish.Result{Index: i, EventID: ev.GetEventId()}
		if i < len(events)/2 {
			results[i].ShardID, results[i].SequenceNumber = "shardId-000000000000", "1"
		} else {
			results[i].ErrorCode = "ProvisionedThroughputExceededException"
		}
	}
	return results, &publish.UnavailableError{Results: results}
}

func TestEventsCountedByOutcome(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	m, err := newMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test"))
	if err != nil {
		t.Fatal(err)
	}
	// A quota of 10 events per second whose burst is 10 events (the largest "request").
	svc := &Service{publisher: halfPublisher{}, metrics: m, quota: quota.New(quota.Limits{EventsPerSecond: 10, BytesPerSecond: 1e9}, 10, 1<<20, 10)}
	ctx := context.Background()
	demo := Caller{Principal: &auth.Principal{Producer: "demo", Method: auth.MethodAPIKey, Scopes: []string{apikey.ScopeIngest}}}
	ops := Caller{Principal: &auth.Principal{Producer: "ops", Method: auth.MethodAPIKey, Scopes: []string{apikey.ScopeRetract}}}

	if _, err := svc.Submit(ctx, demo, testevents.Batch(6, true)); err == nil {
		t.Fatal("a half-acknowledged batch was answered as a success")
	}
	invalid := testevents.Batch(3, true)
	invalid[1].Batting.AtBats = nil
	if _, err := svc.Submit(ctx, demo, invalid); err == nil {
		t.Fatal("an invalid batch was accepted")
	}
	// demo has used 9 of its 10 events: 2 more are over its quota, not ops's.
	if _, err := svc.Submit(ctx, demo, testevents.Batch(2, true)); KindOf(err) != KindOverQuota {
		t.Fatalf("over quota: %v, want KindOverQuota", err)
	}
	// ops lacks the ingest scope for stat lines.
	if _, err := svc.Submit(ctx, ops, testevents.Batch(2, true)); KindOf(err) != KindForbidden {
		t.Fatalf("without the scope: %v, want KindForbidden", err)
	}
	if _, err := svc.Reserve(100); err == nil {
		t.Fatal("reserve succeeded on a busy publisher")
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, metric := range sm.Metrics {
			for _, dp := range metric.Data.(metricdata.Sum[int64]).DataPoints {
				key := metric.Name
				if producer, ok := dp.Attributes.Value(attribute.Key("producer")); ok {
					key += "[" + producer.AsString() + "]"
				}
				if reason, ok := dp.Attributes.Value(attribute.Key("reason")); ok {
					key += "{" + reason.AsString() + "}"
				}
				got[key] += dp.Value
			}
		}
	}
	want := map[string]int64{
		"boxscore.ingest.events.received[demo]":                     11,
		"boxscore.ingest.events.received[ops]":                      2,
		"boxscore.ingest.events.accepted[demo]":                     3,
		"boxscore.ingest.events.rejected[demo]{stream_unavailable}": 3,
		"boxscore.ingest.events.rejected[demo]{invalid}":            3,
		"boxscore.ingest.events.rejected[demo]{quota}":              2,
		"boxscore.ingest.events.rejected[ops]{forbidden}":           2,
		"boxscore.ingest.requests.refused[demo]{quota}":             1,
		"boxscore.ingest.requests.refused[ops]{forbidden}":          1,
		"boxscore.ingest.requests.busy":                             1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}
