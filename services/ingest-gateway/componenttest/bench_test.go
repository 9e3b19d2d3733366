package componenttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/boxscore-dev/boxscore/pkg/apikey"
	ingestv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/ingest/v1"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/ingestapi"
	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/auth"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/ingest"
	"github.com/boxscore-dev/boxscore/services/ingest-gateway/internal/quota"
)

// benchBatch is the bench's request size (test/bench: 100 events a request).
const benchBatch = 100

// benchGateway is the gateway as `make bench` runs it: API keys, quotas on (high enough
// never to refuse), a 4-shard stream on kinesalite.
func benchGateway(b *testing.B) (*gateway, string) {
	b.Helper()
	kin := kinesalitetest.Start(b)
	name := kinesalitetest.UniqueName(b)
	kin.CreateStream(b, name, 4)
	key := apikey.Generate()
	keysPath := filepath.Join(b.TempDir(), "keys.yaml")
	if err := apikey.AppendKey(keysPath, apikey.Entry{Producer: "bench", SHA256: apikey.Hash(key),
		Scopes: []string{apikey.ScopeIngest}}); err != nil {
		b.Fatal(err)
	}
	keys, err := auth.NewKeyStore(keysPath, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		b.Fatal(err)
	}
	limiter := quota.New(quota.Limits{EventsPerSecond: 1e9, BytesPerSecond: 1e12}, ingest.MaxBatchEvents, 5<<20, quota.DefaultMaxProducers)
	cfg := publishConfig()
	cfg.RetryBudget, cfg.AttemptTimeout = 10*time.Second, 3*time.Second
	g := startGatewayOpts(b, kin.Endpoint, name, cfg, gatewayOptions{auth: auth.New(keys, nil), quota: limiter})
	g.kinesis = kin
	return g, key
}

// benchEvent is the JSON of one event as test/stack renders the bench's lines: an event id,
// a version as a string, every batting count.
func benchEvent(i int) map[string]any {
	player := 700000 + i%750
	game := fmt.Sprintf("bench%07d", i/750)
	return map[string]any{
		"eventId": fmt.Sprintf("bench-%d-%s-v1", player, game),
		"player":  map[string]any{"mlbId": fmt.Sprint(player), "name": fmt.Sprintf("Player %d", player), "team": "LAD"},
		"game": map[string]any{"gameId": game, "date": "2024-04-01", "gameNumber": 1, "opponent": "SD",
			"homeAway": "HOME_AWAY_HOME"},
		"version": "1",
		"source":  "stack-test",
		"batting": map[string]any{
			"plateAppearances": 4, "atBats": 3, "runs": 1, "hits": 2, "doubles": 1,
			"triples": 0, "homeRuns": 1, "rbi": 2, "baseOnBalls": 1, "intentionalWalks": 0,
			"strikeOuts": 1, "hitByPitch": 0, "sacBunts": 0, "sacFlies": 0, "stolenBases": 1,
			"caughtStealing": 0, "groundIntoDoublePlay": 0, "totalBases": 6,
		},
	}
}

// benchNDJSON renders batch n of the bench: benchBatch events, one per line.
func benchNDJSON(b *testing.B, n int) []byte {
	b.Helper()
	var buf bytes.Buffer
	for i := range benchBatch {
		line, err := json.Marshal(benchEvent(n*benchBatch + i))
		if err != nil {
			b.Fatal(err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// cpuTime is the process's user and system CPU so far: the gateway's handlers and the
// benchmark's client, not kinesalite (another process).
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRates adds events/s and the process's CPU-seconds per 10,000 events.
func reportRates(b *testing.B, elapsed, cpu time.Duration) {
	events := float64(b.N * benchBatch)
	b.ReportMetric(events/elapsed.Seconds(), "events/s")
	b.ReportMetric(cpu.Seconds()/events*10000, "cpu-s/10k-events")
}

// BenchmarkGatewayHTTP posts NDJSON batches of 100 events with an API key through the whole
// HTTP path (auth, quota, decoding, validation, envelopes, PutRecords to kinesalite) and
// checks every answer is a 202 for the whole batch. Requests are sent one at a time, so
// allocs/op and B/op are one request's (client included).
func BenchmarkGatewayHTTP(b *testing.B) {
	g, key := benchGateway(b)
	bodies := make([][]byte, 16)
	for i := range bodies {
		bodies[i] = benchNDJSON(b, i)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	post := func(body []byte) {
		req, err := http.NewRequestWithContext(b.Context(), http.MethodPost, g.httpURL+"/v1/stats", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		answer, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusAccepted {
			b.Fatalf("POST: %d %v %.900s", resp.StatusCode, err, answer)
		}
		var accepted struct {
			Accepted int `json:"accepted"`
		}
		if err := json.Unmarshal(answer, &accepted); err != nil || accepted.Accepted != benchBatch {
			b.Fatalf("202 accepted %d, want %d (%v)", accepted.Accepted, benchBatch, err)
		}
	}
	post(bodies[0]) // connections and the stream warmed up
	b.ReportAllocs()
	cpu0, start := cpuTime(b), time.Now()
	b.ResetTimer()
	for i := range b.N {
		post(bodies[i%len(bodies)])
	}
	b.StopTimer()
	reportRates(b, time.Since(start), cpuTime(b)-cpu0)
}

// BenchmarkGatewayGRPC is BenchmarkGatewayHTTP through gRPC PutStats.
func BenchmarkGatewayGRPC(b *testing.B) {
	g, key := benchGateway(b)
	requests := make([]*ingestv1.PutStatsRequest, 16)
	for n := range requests {
		events := make([]*statsv1.StatEvent, benchBatch)
		for i := range events {
			events[i] = eventFromJSON(b, benchEvent(n*benchBatch+i))
		}
		requests[n] = &ingestv1.PutStatsRequest{Events: events}
	}
	ctx := metadata.AppendToOutgoingContext(b.Context(), "authorization", "Bearer "+key)
	put := func(req *ingestv1.PutStatsRequest) {
		resp, err := g.grpc.PutStats(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if len(resp.GetResults()) != benchBatch {
			b.Fatalf("%d results, want %d", len(resp.GetResults()), benchBatch)
		}
	}
	put(requests[0])
	b.ReportAllocs()
	cpu0, start := cpuTime(b), time.Now()
	b.ResetTimer()
	for i := range b.N {
		put(requests[i%len(requests)])
	}
	b.StopTimer()
	reportRates(b, time.Since(start), cpuTime(b)-cpu0)
}

// eventFromJSON reads one event's JSON as the gateway's HTTP API would.
func eventFromJSON(b *testing.B, ev map[string]any) *statsv1.StatEvent {
	b.Helper()
	data, err := json.Marshal(ev)
	if err != nil {
		b.Fatal(err)
	}
	decoded, err := ingestapi.DecodeEvent(data)
	if err != nil {
		b.Fatal(err)
	}
	return decoded
}
