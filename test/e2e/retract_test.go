package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/test/stack"
)

// retractionEvent is a retraction as an operator sends it: the player, the game, a version
// above the line's and a reason, no batting line.
func retractionEvent(eventID string, playerID int64, gameID string, version int64, reason string) map[string]any {
	return map[string]any{
		"eventId": eventID, "player": map[string]any{"mlbId": fmt.Sprint(playerID)}, "game": map[string]any{"gameId": gameID},
		"version": fmt.Sprint(version), "retraction": map[string]any{"reason": reason},
	}
}

// TestRetractionEndToEnd: an operator's retraction (a producer with the retract scope)
// removes a line from the fact table and the views, recorded with its producer and reason;
// redelivered, it changes nothing; a late line at a lower version does not bring the row
// back; a newer line does. A producer with only the ingest scope cannot retract, and a
// retraction that carries a batting line is refused at the door.
func TestRetractionEndToEnd(t *testing.T) {
	opsKey, opsHash := newAPIKey(t)
	feedKey, feedHash := newAPIKey(t)
	path := keysFile(t, map[string][2]string{"ops": {opsHash, "ingest, retract"}, "feed": {feedHash, "ingest"}})
	p := stack.NewPipeline(t, stack.PipelineConfig{Shards: 2, Config: stack.Config{
		Env: map[string][]string{stack.Gateway: {"--api-keys-file", path}},
	}})
	p.StartAll()
	url := p.GatewayURL()

	const player = 605141
	line := func(eventID, gameID, date string, version int64) stack.Line {
		return stack.Line{EventID: eventID, PlayerID: player, Name: "Mookie Betts", GameID: gameID, Date: date,
			Opponent: "SD", Version: version, PA: 4, AB: 4, R: 1, H: 2, D2: 1, RBI: 1, SO: 1}
	}
	mustAccept(t, url, feedKey, line("retract-g1-v1", "LAN202404010", "2024-04-01", 1).Event(),
		line("retract-g2-v1", "LAN202404020", "2024-04-02", 1).Event())
	p.WaitRows(2, 60*time.Second)
	seasonGames := func() int {
		return p.Count("SELECT coalesce(sum(games), 0)::int FROM boxscore.batting_season WHERE player_id = $1", player)
	}
	if g := seasonGames(); g != 2 {
		t.Fatalf("batting_season games = %d, want 2", g)
	}

	// Without the retract scope, and with a batting line: refused, nothing sent.
	if status, body := postAs(t, url, feedKey, retractionEvent("retract-by-feed", player, "LAN202404010", 2, "feed may not")); status != http.StatusForbidden {
		t.Errorf("retraction by a producer without the retract scope: %d %s, want 403", status, body)
	}
	withBatting := retractionEvent("retract-with-batting", player, "LAN202404010", 2, "has batting")
	withBatting["batting"] = line("x", "LAN202404010", "2024-04-01", 2).Event()["batting"]
	if status, body := postAs(t, url, opsKey, withBatting); status != http.StatusUnprocessableEntity || !strings.Contains(body, "not_allowed") {
		t.Errorf("retraction with a batting line: %d %s, want 422 not_allowed", status, body)
	}

	// The retraction, sent twice (a client's retry): removed once, recorded once.
	tomb := retractionEvent("retract-g1-v2", player, "LAN202404010", 2, "reported for the wrong player")
	mustAccept(t, url, opsKey, tomb)
	mustAccept(t, url, opsKey, tomb)
	p.Settle(60 * time.Second)
	if _, _, _, found := factProducer(p, player, "LAN202404010"); found {
		t.Fatal("the retracted line is still in the fact table")
	}
	if g := seasonGames(); g != 1 {
		t.Errorf("batting_season games = %d after the retraction, want 1", g)
	}
	var producer, reason, removed string
	var version int64
	if err := p.DB.QueryRow(context.Background(), `SELECT version, coalesce(producer, ''), reason, coalesce(removed_event_id, '')
		FROM boxscore.batting_game_retraction WHERE player_id = $1 AND game_id = 'LAN202404010'`, player).
		Scan(&version, &producer, &reason, &removed); err != nil {
		t.Fatalf("read the tombstone: %v", err)
	}
	if version != 2 || producer != "ops" || reason != "reported for the wrong player" || removed != "retract-g1-v1" {
		t.Errorf("tombstone = (version %d, producer %q, reason %q, removed %q)", version, producer, reason, removed)
	}
	if n := p.Count("SELECT count(*)::int FROM boxscore.batting_game_retraction"); n != 1 {
		t.Errorf("%d tombstones, want 1", n)
	}

	// The old line again (a replay): it does not bring the row back.
	mustAccept(t, url, feedKey, line("retract-g1-v1", "LAN202404010", "2024-04-01", 1).Event())
	p.Settle(60 * time.Second)
	if _, _, _, found := factProducer(p, player, "LAN202404010"); found {
		t.Fatal("a line below the tombstone brought the row back")
	}

	// A newer line does.
	mustAccept(t, url, feedKey, line("retract-g1-v3", "LAN202404010", "2024-04-01", 3).Event())
	p.Settle(60 * time.Second)
	if v, id, prod, found := factProducer(p, player, "LAN202404010"); !found || v != 3 || id != "retract-g1-v3" || prod != "feed" {
		t.Errorf("after the newer line: row (version %d, event %s, producer %q, found %v), want (3, retract-g1-v3, feed)", v, id, prod, found)
	}
	if g := seasonGames(); g != 2 {
		t.Errorf("batting_season games = %d after the newer line, want 2", g)
	}
	if dl := p.DeadLetters(); len(dl) != 0 {
		t.Errorf("dead letters %v, want none", dl)
	}
}
