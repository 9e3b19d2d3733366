// Package e2e drives the four services as separate processes on real kinesalite and
// PostgreSQL, and checks the warehouse exactly.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/test/stack"
)

// season makes a consistent batting line for each player in each of games games, game
// by game, with event ids "e2e-<player>-<game>-v1".
func season(rng *rand.Rand, players []int64, games int) []stack.Line {
	var lines []stack.Line
	day := time.Date(2024, 3, 28, 0, 0, 0, 0, time.UTC)
	opponents := []string{"SD", "SF", "STL", "CHC", "ATL", "NYM", "WSH", "ARI"}
	for g := range games {
		day = day.AddDate(0, 0, 1+rng.IntN(2))
		gameID := fmt.Sprintf("LAN%s0", day.Format("20060102"))
		for _, p := range players {
			l := stack.RandomLine(rng, "e2e", p, gameID, day.Format("2006-01-02"), 1)
			l.Opponent, l.Home = opponents[g%len(opponents)], g%2 == 0
			lines = append(lines, l)
		}
	}
	return lines
}

// mustSend POSTs lines once and requires a 202 acknowledging every event.
func mustSend(t *testing.T, p *stack.Producer, lines []stack.Line, ndjson bool) {
	t.Helper()
	a, err := p.Send(context.Background(), lines, stack.PostOptions{NDJSON: ndjson})
	if err != nil {
		t.Fatalf("POST of %d events: %v", len(lines), err)
	}
	if a.Status != http.StatusAccepted {
		t.Fatalf("POST of %d events: %d %s", len(lines), a.Status, a.Body)
	}
}

func TestPipelineEndToEnd(t *testing.T) {
	p := stack.NewPipeline(t, stack.PipelineConfig{Shards: 4})
	p.StartAll()
	led := stack.NewLedger()
	producer := stack.NewProducer(p.GatewayURL(), led)

	// Two players in every shard: a test of a multi-shard pipeline must load every shard.
	players := stack.PlayersOverShards(t, p.Kinesis, p.Stream, 660000, 2)
	n := len(players)
	lines := season(rand.New(rand.NewPCG(2024, 3)), players, 34) // 272 lines, 8 players x 34 games
	// Ten events come without an id: the gateway assigns one.
	for i := 200; i < 210; i++ {
		lines[i].EventID = ""
	}

	mustSend(t, producer, lines[:100], false)
	mustSend(t, producer, lines[:100], false) // the client retries a request it did not see answered: same ids
	mustSend(t, producer, lines[100:200], true)
	mustSend(t, producer, lines[200:], true)

	// Corrections: game 10 of the first player gets version 3, then version 2 arrives late
	// (it must not win); game 20 of the second player is corrected once with version 2.
	late := lines[10*n]
	v3, v2 := late, late
	v3.Version, v3.EventID, v3.H, v3.HR, v3.D2, v3.D3 = 3, late.EventID[:len(late.EventID)-2]+"v3", min(late.AB, late.H+1), 0, 0, 0
	v3.RBI, v3.R, v3.SO = 0, 0, 0
	v2.Version, v2.EventID, v2.SO = 2, late.EventID[:len(late.EventID)-2]+"v2", 0
	mustSend(t, producer, []stack.Line{v3}, false)
	mustSend(t, producer, []stack.Line{v2}, false)
	fix := lines[20*n+1]
	fix.Version, fix.EventID, fix.SB = 2, fix.EventID[:len(fix.EventID)-2]+"v2", fix.SB+1
	mustSend(t, producer, []stack.Line{fix}, true)

	// Invalid events. A request with one malformed event is refused whole: 422, nothing sent.
	refused := stack.RandomLine(rand.New(rand.NewPCG(1, 1)), "e2e-refused", players[0], "LAN202409300", "2024-09-30", 1)
	bad := refused
	bad.EventID = "e2e-refused-2"
	badEvent := bad.Event()
	badEvent["batting"].(map[string]any)["atBats"] = -1
	body, _ := json.Marshal([]any{refused.Event(), badEvent})
	a, err := stack.Post(context.Background(), http.DefaultClient, p.GatewayURL(), body, "application/json", "")
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != http.StatusUnprocessableEntity || !strings.Contains(string(a.Body), "atBats") || !strings.Contains(string(a.Body), `"index":1`) {
		t.Fatalf("malformed event: %d %s, want 422 naming index 1 and batting.atBats", a.Status, a.Body)
	}
	// Lines that are well-formed but impossible pass the gateway and are dead-lettered by
	// the transformer with their reason: one of each player, so in every shard.
	var impossible []stack.Line
	for i, id := range players {
		impossible = append(impossible, stack.ImpossibleLine(fmt.Sprintf("e2e-impossible-%d", i), id, "LAN202409290", "2024-09-29"))
	}
	mustSend(t, producer, impossible, false)

	expected := map[string]bool{}
	for _, l := range led.Accepted() {
		if !l.Impossible {
			expected[l.Key()] = true
		}
	}
	p.WaitFor(60*time.Second, "every line and every rejection in the warehouse", func() bool {
		var rows, dead int
		if err := p.DB.QueryRow(context.Background(), "SELECT (SELECT count(*) FROM boxscore.fact_batting_game), (SELECT count(*) FROM boxscore.dead_letter)").Scan(&rows, &dead); err != nil {
			return false
		}
		return rows >= len(expected) && dead >= len(impossible) && p.CheckpointsAt(led.Acked())
	})

	// Exactly the expected rows, with every value as sent (the corrections applied, the
	// gateway's ids on the lines sent without), the impossible lines dead-lettered.
	rows := p.AssertExactlyOnce(led)
	if len(rows) != len(expected) {
		t.Fatalf("fact rows = %d, want %d", len(rows), len(expected))
	}
	if r, ok := rows[v3.EventID]; !ok || r.Version != 3 {
		t.Fatalf("out-of-order correction: the row of %s is not version 3 (%s): %+v", late.Key(), v3.EventID, r)
	}
	assigned := 0
	for _, l := range led.Accepted() {
		if strings.HasPrefix(l.EventID, "e2e-") {
			continue
		}
		if _, ok := rows[l.EventID]; !ok {
			t.Errorf("%s: no row under the gateway-assigned id %s", l.Key(), l.EventID)
		}
		assigned++
	}
	if assigned != 10 {
		t.Errorf("%d lines under gateway-assigned ids, want 10", assigned)
	}
	p.AssertEveryShardUsed(led)

	// The refused request left nothing; the impossible lines' dead letters say why.
	if got := p.Count("SELECT count(*) FROM boxscore.fact_batting_game WHERE game_id IN ('LAN202409300','LAN202409290')"); got != 0 {
		t.Fatalf("%d rows for refused or impossible events, want 0", got)
	}
	var deadIDs []string
	for _, d := range p.DeadLetters() {
		if d.Reason != "hits_exceed_at_bats" {
			t.Errorf("dead letter %s: reason %q, want hits_exceed_at_bats", d.EventID, d.Reason)
		}
		deadIDs = append(deadIDs, d.EventID)
	}
	if len(deadIDs) != len(players) {
		t.Fatalf("dead letters = %v, want the %d impossible lines", deadIDs, len(players))
	}

	// Every service shuts down cleanly on SIGTERM (checked by StopAll at cleanup).
}
