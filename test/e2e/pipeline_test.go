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
	// Lines that are well-formed but impossible are refused at the door (422, each named
	// with its rule), so the producer learns of them; nothing of the request is sent. (The
	// transformer's own check of such lines, written past the gateway, is in crafted_test.)
	var impossible []stack.Line
	for i, id := range players {
		impossible = append(impossible, stack.ImpossibleLine(fmt.Sprintf("e2e-impossible-%d", i), id, "LAN202409290", "2024-09-29"))
	}
	a, err = producer.Send(context.Background(), impossible, stack.PostOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != http.StatusUnprocessableEntity || !strings.Contains(string(a.Body), "hits") || !strings.Contains(string(a.Body), fmt.Sprintf(`"index":%d`, len(impossible)-1)) {
		t.Fatalf("impossible lines: %d %s, want 422 naming every line's rule", a.Status, a.Body)
	}

	expected := map[string]bool{}
	for _, l := range led.Accepted() {
		if !l.Impossible {
			expected[l.Key()] = true
		}
	}
	p.WaitFor(60*time.Second, "every line in the warehouse", func() bool {
		return p.Count("SELECT count(*) FROM boxscore.fact_batting_game") >= len(expected) && p.CheckpointsAt(led.Acked())
	})

	// Exactly the expected rows, with every value as sent (the corrections applied, the
	// gateway's ids on the lines sent without), and no dead letter.
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

	// The refused requests left nothing: no row, no dead letter the producer cannot see.
	if got := p.Count("SELECT count(*) FROM boxscore.fact_batting_game WHERE game_id IN ('LAN202409300','LAN202409290')"); got != 0 {
		t.Fatalf("%d rows for refused or impossible events, want 0", got)
	}
	if dead := p.DeadLetters(); len(dead) != 0 {
		t.Fatalf("dead letters = %+v, want none: every bad line was refused at the door", dead)
	}

	// Every service shuts down cleanly on SIGTERM (checked by StopAll at cleanup).
}
