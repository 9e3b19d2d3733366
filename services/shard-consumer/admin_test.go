package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/pkg/server"
	"github.com/boxscore-dev/boxscore/services/shard-consumer/internal/consumer"
)

type fakeLeases map[string]int64

func (f fakeLeases) Held() map[string]int64 { return f }

type fakeConsumer struct {
	reading map[string]int64
	stalled map[string]consumer.Stall
}

func (f fakeConsumer) Reading() map[string]int64          { return f.reading }
func (f fakeConsumer) Stalled() map[string]consumer.Stall { return f.stalled }

// /leases names every held lease, whether it is read, and, for a stalled shard, since when,
// why and the last error.
func TestLeasesShowStalledShards(t *testing.T) {
	since := time.Date(2026, 12, 1, 3, 50, 0, 0, time.UTC)
	h := assignmentHandler("replica-a", fakeLeases{"shard-0": 3, "shard-1": 4},
		fakeConsumer{reading: map[string]int64{"shard-0": 3, "shard-1": 4},
			stalled: map[string]consumer.Stall{"shard-1": {Since: since, Reason: consumer.StallTransientRetries, Op: "load", Err: "loader down"}}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/leases", nil))
	var got struct {
		Worker string           `json:"worker"`
		Shards []map[string]any `json:"shards"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	if got.Worker != "replica-a" || len(got.Shards) != 2 {
		t.Fatalf("answer %s", rec.Body)
	}
	if s := got.Shards[0]; s["shardId"] != "shard-0" || s["stalled"] != false || s["stalledSince"] != nil {
		t.Errorf("shard-0 = %v, want not stalled, without stalledSince", s)
	}
	s := got.Shards[1]
	if s["shardId"] != "shard-1" || s["stalled"] != true || s["stalledSince"] != "2026-12-01T03:50:00Z" ||
		s["stalledReason"] != "transient_retries" || s["stalledError"] != "load: loader down" || s["reading"] != true {
		t.Errorf("shard-1 = %v, want stalled since 03:50 for transient_retries of load", s)
	}
}

// --stall-after defaults to one minute and must be positive.
func TestStallAfterFlag(t *testing.T) {
	cfg, printed, code, stderr := printConfig(t)
	if code != server.ExitOK || cfg.StallAfter != time.Minute || cfg.Consumer().StallAfter != time.Minute {
		t.Fatalf("exit %d (%s), stall-after %s printed %v; want 1m", code, stderr, cfg.StallAfter, printed["stall-after"])
	}
	if _, _, code, stderr := printConfig(t, "--stall-after", "0s"); code != server.ExitUsage {
		t.Errorf("--stall-after 0s: exit %d (%s), want a usage error", code, stderr)
	}
}
