package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/pkg/statevent"
	"github.com/boxscore-dev/boxscore/test/stack"
)

// newAPIKey makes a key in the documented format (bsk_ + base64url of 32 random bytes) and
// its keys-file hash (lowercase hex SHA-256 of the whole key), written here from the format
// rather than with the gateway's own package.
func newAPIKey(t *testing.T) (key, hash string) {
	t.Helper()
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		t.Fatal(err)
	}
	key = "bsk_" + base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(key))
	return key, hex.EncodeToString(sum[:])
}

// keysFile writes a keys file (mode 0600) of producer -> (hash, scopes) entries.
func keysFile(t *testing.T, entries map[string][2]string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("keys:\n")
	for producer, e := range entries {
		fmt.Fprintf(&b, "  - producer: %s\n    sha256: %q\n    scopes: [%s]\n", producer, e[0], e[1])
	}
	path := filepath.Join(t.TempDir(), "api-keys.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// postAs sends events (the ingest API's JSON) with the bearer token key ("" for none) and
// returns the status and body.
func postAs(t *testing.T, gatewayURL, key string, events ...map[string]any) (int, string) {
	t.Helper()
	body, err := json.Marshal(events)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gatewayURL+"/v1/stats", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(answer)
}

func mustAccept(t *testing.T, gatewayURL, key string, events ...map[string]any) {
	t.Helper()
	if status, body := postAs(t, gatewayURL, key, events...); status != http.StatusAccepted {
		t.Fatalf("POST: %d %s, want 202", status, body)
	}
}

// factProducer returns the stored line of (player, game): its version, event id and
// producer ("" when NULL), or found false.
func factProducer(p *stack.Pipeline, playerID int64, gameID string) (version int64, eventID, producer string, found bool) {
	err := p.DB.QueryRow(context.Background(), `SELECT version, event_id, coalesce(producer, '') FROM boxscore.fact_batting_game
		WHERE player_id = $1 AND game_id = $2`, playerID, gameID).Scan(&version, &eventID, &producer)
	return version, eventID, producer, err == nil
}

// TestProducerOnTheDataAndHostileInputAtTheDoor: through the whole pipeline with API keys,
// the authenticated producer is recorded on the fact row; a game id with a trailing space
// and a lower-case team are the same game and team, never a second row; impossible lines,
// versions above the ceiling, control characters and a retraction without the retract
// scope are refused at the door (422/403) and never reach the warehouse or its dead letters.
func TestProducerOnTheDataAndHostileInputAtTheDoor(t *testing.T) {
	demoKey, demoHash := newAPIKey(t)
	path := keysFile(t, map[string][2]string{"demo": {demoHash, "ingest"}})
	p := stack.NewPipeline(t, stack.PipelineConfig{Shards: 2, Config: stack.Config{
		Env: map[string][]string{stack.Gateway: {"--api-keys-file", path}},
	}})
	p.StartAll()
	url := p.GatewayURL()

	const player = 660271
	first := stack.Line{EventID: "producer-v1", PlayerID: player, Name: "Shohei Ohtani", GameID: "LAN202409290", Date: "2024-09-29",
		Opponent: "COL", Home: true, Version: 1, PA: 4, AB: 4, R: 1, H: 1, HR: 1, RBI: 1, SO: 1}
	spaced := first.Event()
	spaced["game"].(map[string]any)["gameId"] = "LAN202409290 "
	spaced["player"].(map[string]any)["team"] = " lad"
	spaced["game"].(map[string]any)["opponent"] = "col"

	if status, body := postAs(t, url, "", first.Event()); status != http.StatusUnauthorized {
		t.Fatalf("without a key: %d %s, want 401", status, body)
	}
	if status, body := postAs(t, url, "bsk_not-a-key", first.Event()); status != http.StatusUnauthorized {
		t.Fatalf("with a wrong key: %d %s, want 401", status, body)
	}
	mustAccept(t, url, demoKey, spaced)

	// The correction names the game without the space: it must update the same row.
	second := first
	second.EventID, second.Version, second.H, second.D2, second.HR, second.RBI, second.R = "producer-v2", 2, 2, 1, 1, 2, 1
	mustAccept(t, url, demoKey, second.Event())

	// Refused at the door, each with its reason, nothing sent.
	impossible := stack.ImpossibleLine("producer-impossible", player, "LAN202409300", "2024-09-30")
	ceiling := first
	ceiling.EventID, ceiling.GameID = "producer-ceiling", "LAN202409280"
	tooHigh := ceiling.Event()
	tooHigh["version"] = "9223372036854775807"
	control := first
	control.EventID, control.GameID, control.Name = "producer-control", "LAN202409270", "Sho\u202ehei"
	retraction := map[string]any{"eventId": "producer-retract", "player": map[string]any{"mlbId": fmt.Sprint(player)},
		"game": map[string]any{"gameId": "LAN202409290"}, "version": "3", "retraction": map[string]any{"reason": "not allowed for demo"}}
	for _, tc := range []struct {
		name   string
		event  map[string]any
		status int
		want   string
	}{
		{"impossible line", impossible.Event(), http.StatusUnprocessableEntity, "hits_exceed_at_bats"},
		{"version above the ceiling", tooHigh, http.StatusUnprocessableEntity, "version_above_ceiling"},
		{"bidi override in a name", control.Event(), http.StatusUnprocessableEntity, "invalid_characters"},
		{"retraction without the retract scope", retraction, http.StatusForbidden, "retract"},
	} {
		if status, body := postAs(t, url, demoKey, tc.event); status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %d naming %s", tc.name, status, body, tc.status, tc.want)
		}
	}

	p.WaitFor(60*time.Second, "the correction in the warehouse", func() bool {
		v, _, _, found := factProducer(p, player, "LAN202409290")
		return found && v == 2
	})
	p.Settle(10 * time.Second)
	version, eventID, producer, _ := factProducer(p, player, "LAN202409290")
	if version != 2 || eventID != "producer-v2" || producer != "demo" {
		t.Errorf("row = (version %d, event %s, producer %q), want (2, producer-v2, demo)", version, eventID, producer)
	}
	if n := p.Count("SELECT count(*) FROM boxscore.fact_batting_game"); n != 1 {
		t.Errorf("%d fact rows, want 1: the trailing space made a second game, or a refused line got through", n)
	}
	var team, opponent string
	if err := p.DB.QueryRow(context.Background(), `SELECT p.team, f.opponent FROM boxscore.dim_player p
		JOIN boxscore.fact_batting_game f USING (player_id)`).Scan(&team, &opponent); err != nil {
		t.Fatal(err)
	}
	if team != "LAD" || opponent != "COL" {
		t.Errorf("team %q, opponent %q, want LAD and COL", team, opponent)
	}
	if dl := p.DeadLetters(); len(dl) != 0 {
		t.Errorf("dead letters %v, want none: every hostile line was refused at the door", dl)
	}

	// An impossible line written past the gateway (straight to the stream, as a producer
	// with stream access could): the transformer still refuses it, and its dead letter
	// names the producer its envelope carries.
	crafted, err := statevent.EncodeProducerEnvelope(stack.StatEvent(t, impossible), "crafted-producer", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	recs := []stack.Crafted{{Name: "impossible past the gateway", Key: impossible.PartitionKey(), Data: crafted}}
	if err := stack.PutCrafted(context.Background(), p.Kinesis, p.Stream, recs); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(60*time.Second, "the crafted line's dead letter", func() bool {
		return p.Count("SELECT count(*)::int FROM boxscore.dead_letter") >= 1
	})
	var reason, letterProducer string
	if err := p.DB.QueryRow(context.Background(), `SELECT reason, coalesce(producer, '') FROM boxscore.dead_letter`).Scan(&reason, &letterProducer); err != nil {
		t.Fatal(err)
	}
	if reason != "hits_exceed_at_bats" || letterProducer != "crafted-producer" {
		t.Errorf("dead letter (reason %q, producer %q), want (hits_exceed_at_bats, crafted-producer)", reason, letterProducer)
	}
}

// TestAnonymousProducerWithoutAuthentication: with authentication off (loopback), the
// producer recorded is "anonymous".
func TestAnonymousProducerWithoutAuthentication(t *testing.T) {
	p := stack.NewPipeline(t, stack.PipelineConfig{Shards: 1})
	p.StartAll()
	line := stack.Line{EventID: "anonymous-1", PlayerID: 1, Name: "Player 1", GameID: "745001", Date: "2024-03-20",
		Opponent: "SD", Version: 1, PA: 4, AB: 4}
	mustAccept(t, p.GatewayURL(), "", line.Event())
	p.WaitFor(60*time.Second, "the line in the warehouse", func() bool {
		_, _, _, found := factProducer(p, 1, "745001")
		return found
	})
	if _, _, producer, _ := factProducer(p, 1, "745001"); producer != "anonymous" {
		t.Errorf("producer = %q, want anonymous", producer)
	}
}
