// Package e2e drives the four services as separate processes on real kinesalite and
// PostgreSQL, and checks the warehouse exactly.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/boxscore-dev/boxscore/pkg/testutil/kinesalitetest"
	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/test/stack"
)

// line is one batting line as the test expects it in the warehouse.
type line struct {
	EventID                                                 string
	PlayerID                                                int64
	Name                                                    string
	GameID, Date, Opponent                                  string
	GameNumber                                              int
	Home                                                    bool
	Version                                                 int64
	PA, AB, R, H, D2, D3, HR, RBI, BB, IBB, SO, HBP, SH, SF int
	SB, CS, GIDP                                            int
}

func (l line) singles() int    { return l.H - l.D2 - l.D3 - l.HR }
func (l line) totalBases() int { return l.singles() + 2*l.D2 + 3*l.D3 + 4*l.HR }

// event renders the line as the ingest API's JSON (protojson names). An empty EventID is
// left out so the gateway assigns one.
func (l line) event() map[string]any {
	homeAway := "HOME_AWAY_AWAY"
	if l.Home {
		homeAway = "HOME_AWAY_HOME"
	}
	ev := map[string]any{
		"player":  map[string]any{"mlbId": fmt.Sprint(l.PlayerID), "name": l.Name, "team": "LAD"},
		"game":    map[string]any{"gameId": l.GameID, "date": l.Date, "gameNumber": l.GameNumber, "opponent": l.Opponent, "homeAway": homeAway},
		"version": fmt.Sprint(l.Version),
		"source":  "e2e",
		"batting": map[string]any{
			"plateAppearances": l.PA, "atBats": l.AB, "runs": l.R, "hits": l.H, "doubles": l.D2,
			"triples": l.D3, "homeRuns": l.HR, "rbi": l.RBI, "baseOnBalls": l.BB, "intentionalWalks": l.IBB,
			"strikeOuts": l.SO, "hitByPitch": l.HBP, "sacBunts": l.SH, "sacFlies": l.SF, "stolenBases": l.SB,
			"caughtStealing": l.CS, "groundIntoDoublePlay": l.GIDP, "totalBases": l.totalBases(),
		},
	}
	if l.EventID != "" {
		ev["eventId"] = l.EventID
	}
	return ev
}

var players = []struct {
	id   int64
	name string
}{{660271, "Shohei Ohtani"}, {518692, "Freddie Freeman"}, {605141, "Mookie Betts"}}

// season makes a consistent batting line for each player in each of n games.
func season(rng *rand.Rand, games int) []line {
	var lines []line
	day := time.Date(2024, 3, 28, 0, 0, 0, 0, time.UTC)
	opponents := []string{"SD", "SF", "STL", "CHC", "ATL", "NYM", "WSH", "ARI"}
	for g := range games {
		day = day.AddDate(0, 0, 1+rng.IntN(2))
		gameID := fmt.Sprintf("LAN%s0", day.Format("20060102"))
		for _, p := range players {
			pa := 3 + rng.IntN(3)
			bb := rng.IntN(2)
			hbp := rng.IntN(4) / 3
			sf := rng.IntN(5) / 4
			ab := pa - bb - hbp - sf
			h := rng.IntN(ab + 1)
			hr := rng.IntN(h+1) / 2
			d2 := rng.IntN(h-hr+1) / 2
			so := rng.IntN(ab - h + 1)
			lines = append(lines, line{
				EventID: fmt.Sprintf("e2e-%d-%s-v1", p.id, gameID), PlayerID: p.id, Name: p.name,
				GameID: gameID, Date: day.Format("2006-01-02"), Opponent: opponents[g%len(opponents)],
				Home: g%2 == 0, Version: 1,
				PA: pa, AB: ab, R: min(pa, hr+rng.IntN(2)), H: h, D2: d2, HR: hr, RBI: hr + rng.IntN(2),
				BB: bb, SO: so, HBP: hbp, SF: sf, SB: rng.IntN(2),
			})
		}
	}
	return lines
}

type acceptedEvent struct {
	Index          int    `json:"index"`
	EventID        string `json:"eventId"`
	ShardID        string `json:"shardId"`
	SequenceNumber string `json:"sequenceNumber"`
}

type accepted struct {
	Accepted int             `json:"accepted"`
	Results  []acceptedEvent `json:"results"`
}

type client struct {
	t        *testing.T
	url      string
	lastSeq  map[string]string // shard -> greatest sequence number acknowledged
	assigned map[string]string // "player/game" -> gateway-assigned id
}

func (c *client) post(contentType string, body []byte) (int, []byte) {
	c.t.Helper()
	resp, err := http.Post(c.url+"/v1/stats", contentType, bytes.NewReader(body))
	if err != nil {
		c.t.Fatalf("POST /v1/stats: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// send POSTs lines as a JSON array (or NDJSON) and requires a 202 naming a shard and a
// sequence number for every event.
func (c *client) send(lines []line, ndjson bool) accepted {
	c.t.Helper()
	var body []byte
	contentType := "application/json"
	if ndjson {
		contentType = "application/x-ndjson"
		var buf bytes.Buffer
		for _, l := range lines {
			b, _ := json.Marshal(l.event())
			buf.Write(b)
			buf.WriteByte('\n')
		}
		body = buf.Bytes()
	} else {
		events := make([]map[string]any, len(lines))
		for i, l := range lines {
			events[i] = l.event()
		}
		body, _ = json.Marshal(events)
	}
	status, data := c.post(contentType, body)
	if status != http.StatusAccepted {
		c.t.Fatalf("POST of %d events: %d %s", len(lines), status, data)
	}
	var got accepted
	if err := json.Unmarshal(data, &got); err != nil {
		c.t.Fatalf("202 body: %v: %s", err, data)
	}
	if got.Accepted != len(lines) || len(got.Results) != len(lines) {
		c.t.Fatalf("202 says %d accepted with %d results, sent %d", got.Accepted, len(got.Results), len(lines))
	}
	for i, r := range got.Results {
		if r.Index != i || r.ShardID == "" || r.SequenceNumber == "" || r.EventID == "" {
			c.t.Fatalf("result %d incomplete: %+v", i, r)
		}
		if lines[i].EventID != "" && r.EventID != lines[i].EventID {
			c.t.Fatalf("result %d: event id %q, sent %q", i, r.EventID, lines[i].EventID)
		}
		if lines[i].EventID == "" {
			c.assigned[fmt.Sprintf("%d/%s", lines[i].PlayerID, lines[i].GameID)] = r.EventID
		}
		if greater(r.SequenceNumber, c.lastSeq[r.ShardID]) {
			c.lastSeq[r.ShardID] = r.SequenceNumber
		}
	}
	return got
}

func greater(a, b string) bool {
	if b == "" {
		return true
	}
	x, _ := new(big.Int).SetString(a, 10)
	y, _ := new(big.Int).SetString(b, 10)
	return x.Cmp(y) > 0
}

func TestPipelineEndToEnd(t *testing.T) {
	kinesalite := kinesalitetest.Start(t)
	streamName := kinesalitetest.UniqueName(t)
	kinesalite.CreateStream(t, streamName, 4)
	dbURL := pgtest.NewDatabase(t)

	s := stack.New(t, stack.Config{KinesisEndpoint: kinesalite.Endpoint, Stream: streamName, DatabaseURL: dbURL})
	s.StartAll()
	c := &client{t: t, url: s.GatewayURL(), lastSeq: map[string]string{}, assigned: map[string]string{}}

	rng := rand.New(rand.NewPCG(2024, 3))
	lines := season(rng, 90) // 270 lines, 3 players x 90 games
	expected := map[string]line{}
	key := func(l line) string { return fmt.Sprintf("%d/%s", l.PlayerID, l.GameID) }
	for _, l := range lines {
		expected[key(l)] = l
	}
	// Ten events come without an id: the gateway assigns one.
	for i := 200; i < 210; i++ {
		lines[i].EventID = ""
		expected[key(lines[i])] = lines[i]
	}

	c.send(lines[:100], false)
	c.send(lines[:100], false) // the client retries a request it did not see answered: same ids
	c.send(lines[100:200], true)
	c.send(lines[200:], true)

	// Corrections: game 10 of Ohtani gets version 3, then version 2 arrives late (it must
	// not win); game 20 of Freeman is corrected once with version 2.
	late := lines[30] // Ohtani, game 10
	v3, v2 := late, late
	v3.Version, v3.EventID, v3.H, v3.HR, v3.D2, v3.D3 = 3, late.EventID[:len(late.EventID)-2]+"v3", min(late.AB, late.H+1), 0, 0, 0
	v3.RBI, v3.R, v3.SO = 0, 0, 0
	v2.Version, v2.EventID, v2.SO = 2, late.EventID[:len(late.EventID)-2]+"v2", 0
	c.send([]line{v3}, false)
	c.send([]line{v2}, false)
	expected[key(v3)] = v3
	fix := lines[61] // Freeman, game 20
	fix.Version, fix.EventID, fix.SB = 2, fix.EventID[:len(fix.EventID)-2]+"v2", fix.SB+1
	c.send([]line{fix}, true)
	expected[key(fix)] = fix

	// Invalid events. A request with one malformed event is refused whole: 422, nothing sent.
	refused := []line{{EventID: "e2e-refused-1", PlayerID: 660271, Name: "Shohei Ohtani", GameID: "LAN202409300", Date: "2024-09-30", Opponent: "COL", Version: 1, PA: 4, AB: 4, H: 1}}
	bad := refused[0].event()
	bad["batting"].(map[string]any)["atBats"] = -1
	bad["eventId"] = "e2e-refused-2"
	body, _ := json.Marshal([]any{refused[0].event(), bad})
	status, problem := c.post("application/json", body)
	if status != http.StatusUnprocessableEntity || !strings.Contains(string(problem), "atBats") || !strings.Contains(string(problem), `"index":1`) {
		t.Fatalf("malformed event: %d %s, want 422 naming index 1 and batting.atBats", status, problem)
	}
	// Lines that are well-formed but impossible pass the gateway and are dead-lettered by
	// the transformer with their reason.
	var impossible []line
	for i, p := range players {
		l := line{EventID: fmt.Sprintf("e2e-impossible-%d", i), PlayerID: p.id, Name: p.name, GameID: "LAN202409290",
			Date: "2024-09-29", Opponent: "COL", Version: 1, PA: 4, AB: 3, H: 4, BB: 1}
		impossible = append(impossible, l)
	}
	c.send(impossible, false)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	waitFor(t, 60*time.Second, s, "every line and every rejection in the warehouse", func() bool {
		var rows, dead int
		if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM boxscore.fact_batting_game), (SELECT count(*) FROM boxscore.dead_letter)").Scan(&rows, &dead); err != nil {
			return false
		}
		return rows >= len(expected) && dead >= len(impossible) && checkpointsAt(ctx, conn, streamName, c.lastSeq)
	})

	// Exactly the expected rows, with every value as sent (the correction applied).
	var count, distinct int
	if err := conn.QueryRow(ctx, "SELECT count(*), count(DISTINCT event_id) FROM boxscore.fact_batting_game").Scan(&count, &distinct); err != nil {
		t.Fatal(err)
	}
	if count != len(expected) || distinct != len(expected) {
		t.Fatalf("fact rows = %d (%d distinct events), want %d", count, distinct, len(expected))
	}
	rows, err := conn.Query(ctx, `
		SELECT f.player_id, f.game_id, f.event_id, f.version, f.game_date::text, f.game_number, f.opponent, f.home,
		       f.plate_appearances, f.at_bats, f.runs, f.hits, f.singles, f.doubles, f.triples, f.home_runs, f.rbi,
		       f.base_on_balls, f.intentional_walks, f.strike_outs, f.hit_by_pitch, f.sac_bunts, f.sac_flies,
		       f.stolen_bases, f.caught_stealing, f.ground_into_double_play, f.total_bases, p.name
		FROM boxscore.fact_batting_game f JOIN boxscore.dim_player p USING (player_id)`)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for rows.Next() {
		var got line
		var singles, tb int
		if err := rows.Scan(&got.PlayerID, &got.GameID, &got.EventID, &got.Version, &got.Date, &got.GameNumber, &got.Opponent, &got.Home,
			&got.PA, &got.AB, &got.R, &got.H, &singles, &got.D2, &got.D3, &got.HR, &got.RBI, &got.BB, &got.IBB, &got.SO,
			&got.HBP, &got.SH, &got.SF, &got.SB, &got.CS, &got.GIDP, &tb, &got.Name); err != nil {
			t.Fatal(err)
		}
		want, ok := expected[key(got)]
		if !ok {
			t.Errorf("unexpected row %s", key(got))
			continue
		}
		if want.EventID == "" {
			want.EventID = c.assigned[key(want)]
			if want.EventID == "" {
				t.Errorf("%s: no gateway-assigned id recorded", key(want))
			}
		}
		if got != want {
			t.Errorf("row %s:\n got %+v\nwant %+v", key(got), got, want)
		}
		if singles != want.singles() || tb != want.totalBases() {
			t.Errorf("row %s: singles %d TB %d, want %d and %d", key(got), singles, tb, want.singles(), want.totalBases())
		}
		checked++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if checked != len(expected) {
		t.Fatalf("checked %d rows, want %d", checked, len(expected))
	}
	var version int64
	var eventID string
	if err := conn.QueryRow(ctx, "SELECT version, event_id FROM boxscore.fact_batting_game WHERE player_id=$1 AND game_id=$2", late.PlayerID, late.GameID).Scan(&version, &eventID); err != nil {
		t.Fatal(err)
	}
	if version != 3 || eventID != v3.EventID {
		t.Fatalf("out-of-order correction: stored version %d (%s), want 3 (%s)", version, eventID, v3.EventID)
	}

	// The refused request left nothing; the impossible lines are dead letters with reasons.
	var refusedRows int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM boxscore.fact_batting_game WHERE game_id IN ('LAN202409300','LAN202409290')").Scan(&refusedRows); err != nil {
		t.Fatal(err)
	}
	if refusedRows != 0 {
		t.Fatalf("%d rows for refused or impossible events, want 0", refusedRows)
	}
	dead, err := conn.Query(ctx, "SELECT event_id, stage, reason, shard_id, sequence_number, length(payload) FROM boxscore.dead_letter ORDER BY event_id")
	if err != nil {
		t.Fatal(err)
	}
	var deadIDs []string
	for dead.Next() {
		var id, stage, reason, shard, seq string
		var payload int
		if err := dead.Scan(&id, &stage, &reason, &shard, &seq, &payload); err != nil {
			t.Fatal(err)
		}
		if stage != "validate" || reason != "hits_exceed_at_bats" || shard == "" || seq == "" || payload == 0 {
			t.Errorf("dead letter %s: stage %q reason %q shard %q seq %q payload %d bytes", id, stage, reason, shard, seq, payload)
		}
		deadIDs = append(deadIDs, id)
	}
	if err := dead.Err(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(deadIDs, ",") != "e2e-impossible-0,e2e-impossible-1,e2e-impossible-2" {
		t.Fatalf("dead letters = %v, want the three impossible lines", deadIDs)
	}

	// Every service shuts down cleanly on SIGTERM (checked by StopAll at cleanup).
}

// checkpointsAt reports whether every shard's committed checkpoint is the greatest
// sequence number the gateway acknowledged in it.
func checkpointsAt(ctx context.Context, conn *pgx.Conn, streamName string, want map[string]string) bool {
	for shard, seq := range want {
		var got string
		if err := conn.QueryRow(ctx, "SELECT sequence_number FROM boxscore.shard_checkpoint WHERE stream=$1 AND shard_id=$2", streamName, shard).Scan(&got); err != nil || got != seq {
			return false
		}
	}
	return true
}

func waitFor(t *testing.T, timeout time.Duration, s *stack.Stack, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			for _, name := range stack.Services {
				t.Logf("--- %s log (tail) ---\n%s", name, s.LogTail(name, 15))
			}
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
