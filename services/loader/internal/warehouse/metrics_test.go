package warehouse_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestLoadMetrics(t *testing.T) {
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 2)
		reader := sdkmetric.NewManualReader()
		if err := e.store.Instrument(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")); err != nil {
			t.Fatal(err)
		}

		accepted := time.Now().Add(-2 * time.Second)
		first, second := newRow(1, "G1", 1, "ev-1", "1"), newRow(2, "G1", 1, "ev-2", "2")
		first.AcceptedAt, second.AcceptedAt = timestamppb.New(accepted), timestamppb.New(accepted)
		req := request("", "3", first, second)
		req.Rejections = append(req.Rejections, newRejection("3", "validate"))
		mustLoad(t, e.store, req)
		// The same rows again, in the next batch: no-ops, which do not count as fresh data.
		mustLoad(t, e.store, request("3", "5", newRow(1, "G1", 1, "ev-1", "4"), newRow(2, "G1", 1, "ev-2", "5")))
		// A redelivered batch is refused by the checkpoint.
		if _, err := e.store.Load(t.Context(), request("", "3", first)); err == nil {
			t.Fatal("a stale batch was committed")
		}

		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		counts := map[string]int64{}
		var freshness metricdata.HistogramDataPoint[float64]
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch data := m.Data.(type) {
				case metricdata.Sum[int64]:
					for _, dp := range data.DataPoints {
						key := m.Name
						for _, k := range []attribute.Key{"outcome", "stage", "reason"} {
							if v, ok := dp.Attributes.Value(k); ok {
								key += " " + string(k) + "=" + v.AsString()
							}
						}
						counts[key] += dp.Value
					}
				case metricdata.Histogram[float64]:
					if m.Name == "boxscore.loader.freshness" {
						freshness = data.DataPoints[0]
					}
				}
			}
		}
		want := map[string]int64{
			"boxscore.loader.batches outcome=committed":                              2,
			"boxscore.loader.batches outcome=checkpoint_mismatch":                    1,
			"boxscore.loader.rows outcome=inserted":                                  2,
			"boxscore.loader.rows outcome=unchanged":                                 2,
			"boxscore.loader.dead_letters stage=validate reason=hits_exceed_at_bats": 1,
		}
		for k, v := range want {
			if counts[k] != v {
				t.Errorf("%s = %d, want %d (all: %v)", k, counts[k], v, counts)
			}
		}
		if counts["boxscore.loader.rows outcome=updated"] != 0 {
			t.Errorf("updated rows counted: %v", counts)
		}
		// Only the two rows the first batch inserted are fresh, each about 2 s old at commit.
		if freshness.Count != 2 || freshness.Sum < 4 || freshness.Sum > 10 {
			t.Fatalf("freshness: count %d sum %.3f s, want 2 rows of about 2 s", freshness.Count, freshness.Sum)
		}
	})
}

// Retractions that take effect count under their own outcome, not as inserted or updated
// rows, and an ineffective one is unchanged.
func TestLoadMetricsRetractions(t *testing.T) {
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		reader := sdkmetric.NewManualReader()
		if err := e.store.Instrument(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")); err != nil {
			t.Fatal(err)
		}
		mustLoad(t, e.store, request("", "1", newRow(1, "G1", 1, "ev-1", "1")))
		mustLoad(t, e.store, request("1", "3", newTombstone(1, "G1", 2, "r-2", "2"), newTombstone(2, "G1", 1, "r-1", "3")))
		mustLoad(t, e.store, request("3", "4", newTombstone(1, "G1", 2, "r-2", "4")))

		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		rows := map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if data, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "boxscore.loader.rows" {
					for _, dp := range data.DataPoints {
						v, _ := dp.Attributes.Value("outcome")
						rows[v.AsString()] += dp.Value
					}
				}
			}
		}
		want := map[string]int64{"inserted": 1, "updated": 0, "unchanged": 1, "retracted": 2}
		for k, v := range want {
			if rows[k] != v {
				t.Errorf("rows %s = %d, want %d (all: %v)", k, rows[k], v, rows)
			}
		}
	})
}
