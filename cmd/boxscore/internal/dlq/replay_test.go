package dlq_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/credential"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/dlq"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/ingestclient/gatewaytest"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

func replay(t *testing.T, e *env, gw string, c dlq.ReplayCommand) (string, error) {
	t.Helper()
	c.Warehouse, c.GatewayURL, c.RetryBudget = e.warehouse(), gw, 5*time.Second
	out, _, err := run(t, func(ctx context.Context, stdout, stderr *bytes.Buffer) error { return c.Run(ctx, stdout, stderr) })
	return out, err
}

type mark struct {
	replayed bool
	eventID  string
	version  int64
}

func marked(t *testing.T, e *env, id int64) mark {
	t.Helper()
	var m mark
	var eventID *string
	var version *int64
	if err := e.pool.QueryRow(t.Context(), `SELECT replayed_at IS NOT NULL, replay_event_id, replay_event_version FROM boxscore.dead_letter WHERE id = $1`, id).
		Scan(&m.replayed, &eventID, &version); err != nil {
		t.Fatal(err)
	}
	if eventID != nil {
		m.eventID = *eventID
	}
	if version != nil {
		m.version = *version
	}
	return m
}

func accepted(g *gatewaytest.Gateway) map[string]*statsv1.StatEvent {
	out := map[string]*statsv1.StatEvent{}
	for _, ev := range g.Accepted() {
		out[ev.GetEventId()] = ev
	}
	return out
}

func TestReplayAsStoredWithAHigherVersionMarksAndIsIdempotent(t *testing.T) {
	e := newEnv(t)
	fx := seed(t, e)
	g := gatewaytest.Start(t)

	out, err := replay(t, e, g.URL, dlq.ReplayCommand{IDs: []int64{fx.old, fx.other, fx.load}})
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	if !strings.Contains(out, "3 dead letters: 3 replayed, 0 skipped") {
		t.Fatalf("summary:\n%s", out)
	}
	sent := accepted(g)
	for _, tc := range []struct {
		id      int64
		player  int64
		game    string
		version int64 // the stored version + 1
		hits    int32
	}{{fx.old, 660271, "G1", 2, 5}, {fx.other, 605141, "G2", 4, 5}, {fx.load, 660271, "G3", 3, 2}} {
		m := marked(t, e, tc.id)
		wantID := statevent.DeterministicEventID(tc.player, tc.game, tc.version)
		if !m.replayed || m.version != tc.version || m.eventID != wantID {
			t.Errorf("dead letter %d marked %+v, want replayed as %s version %d", tc.id, m, wantID, tc.version)
		}
		ev := sent[wantID]
		if ev == nil || ev.GetVersion() != tc.version || ev.GetBatting().GetHits() != tc.hits || ev.GetPlayer().GetMlbId() != tc.player {
			t.Errorf("gateway got %v for dead letter %d, want the stored line at version %d", ev, tc.id, tc.version)
		}
	}
	if m := marked(t, e, fx.garbage); m.replayed {
		t.Fatal("a dead letter not selected was marked")
	}

	// Again: every one is skipped, nothing is sent.
	requests := len(g.Requests())
	out, err = replay(t, e, g.URL, dlq.ReplayCommand{IDs: []int64{fx.old, fx.other, fx.load}})
	if err != nil || !strings.Contains(out, "0 replayed, 3 skipped") || !strings.Contains(out, "already replayed") {
		t.Fatalf("second replay: %v\n%s", err, out)
	}
	if len(g.Requests()) != requests {
		t.Fatal("a second replay sent requests")
	}

	// --force: once more, above the last replay's version.
	out, err = replay(t, e, g.URL, dlq.ReplayCommand{IDs: []int64{fx.old}, Force: true})
	if err != nil || !strings.Contains(out, "1 replayed") {
		t.Fatalf("forced replay: %v\n%s", err, out)
	}
	if m := marked(t, e, fx.old); m.version != 3 || m.eventID != statevent.DeterministicEventID(660271, "G1", 3) {
		t.Fatalf("forced replay marked %+v, want version 3", m)
	}

	// An undecodable payload cannot be replayed as stored: reported, not marked, exit non-zero.
	out, err = replay(t, e, g.URL, dlq.ReplayCommand{Filters: dlq.Filters{Stage: []string{"decode"}}})
	if err == nil || !strings.Contains(out, "failed") || !strings.Contains(out, "--from-file") || marked(t, e, fx.garbage).replayed {
		t.Fatalf("undecodable replay: %v\n%s", err, out)
	}

	if _, err := replay(t, e, g.URL, dlq.ReplayCommand{}); err == nil {
		t.Fatal("a replay without a selection ran")
	}
}

func TestReplayReportsA422PerEventAndDoesNotMarkIt(t *testing.T) {
	e := newEnv(t)
	fx := seed(t, e)
	g := gatewaytest.Start(t)
	g.RejectWhen(func(ev *statsv1.StatEvent) []statevent.Violation {
		if ev.GetPlayer().GetMlbId() == 605141 {
			return []statevent.Violation{{Field: "player.mlbId", Reason: "unknown_player", Detail: "no such player"}}
		}
		return nil
	})
	out, err := replay(t, e, g.URL, dlq.ReplayCommand{Filters: dlq.Filters{Stage: []string{"validate"}}})
	if err == nil || !strings.Contains(err.Error(), "1 of 2 dead letters were not replayed") {
		t.Fatalf("err = %v\n%s", err, out)
	}
	if !strings.Contains(out, "rejected") || !strings.Contains(out, "player.mlbId unknown_player: no such player") ||
		!strings.Contains(out, "1 replayed, 0 skipped, 1 rejected") {
		t.Fatalf("report:\n%s", out)
	}
	if !marked(t, e, fx.old).replayed || marked(t, e, fx.other).replayed {
		t.Fatalf("marks: old %+v, other %+v; want only the accepted one marked", marked(t, e, fx.old), marked(t, e, fx.other))
	}
}

func TestReplaySkipsADeadLetterSupersededInTheWarehouse(t *testing.T) {
	e := newEnv(t)
	fx := seed(t, e)
	e.fact(t, 660271, "G1", 5) // a correction landed after the dead letter (version 1)
	e.fact(t, 605141, "G2", 3) // the same version as the dead letter's: not newer
	g := gatewaytest.Start(t)

	out, err := replay(t, e, g.URL, dlq.ReplayCommand{IDs: []int64{fx.old, fx.other}})
	if err != nil || !strings.Contains(out, "superseded: the warehouse holds version 5") || !strings.Contains(out, "1 replayed, 1 skipped") {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	if marked(t, e, fx.old).replayed {
		t.Fatal("a superseded dead letter was marked")
	}
	if m := marked(t, e, fx.other); m.version != 4 {
		t.Fatalf("other marked %+v, want version 4 (above the warehouse's 3)", m)
	}
	out, err = replay(t, e, g.URL, dlq.ReplayCommand{IDs: []int64{fx.old}, Force: true})
	if err != nil || !strings.Contains(out, "1 replayed") {
		t.Fatalf("forced: %v\n%s", err, out)
	}
	if m := marked(t, e, fx.old); m.version != 6 {
		t.Fatalf("forced replay marked %+v, want version 6 (above the warehouse's 5)", m)
	}
}

func TestReplayFromAnEditedFileWithTheAPIKey(t *testing.T) {
	e := newEnv(t)
	fx := seed(t, e)
	g := gatewaytest.Start(t)
	// The gateway behind a proxy that wants the key.
	target, _ := url.Parse(g.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys = append(keys, r.Header.Get("Authorization"))
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	// Edit the line `show --json` printed: fix the hits. A bare event matched by its id too.
	shown := show(t, e, fx.old, true)
	edited := strings.Replace(shown, `"hits":5`, `"hits":2`, 1)
	if edited == shown {
		t.Fatalf("no hits in %s", shown)
	}
	bare := `{"eventId":"` + statevent.DeterministicEventID(605141, "G2", 3) + `","version":"9","player":{"mlbId":"605141","name":"P","team":"LAD"},` +
		`"game":{"gameId":"G2","date":"2024-04-01","opponent":"SF","homeAway":"HOME_AWAY_AWAY","season":2024},` +
		`"batting":{"plateAppearances":4,"atBats":4,"runs":0,"hits":1,"doubles":0,"triples":0,"homeRuns":0,"rbi":0,"baseOnBalls":0,"intentionalWalks":0,"strikeOuts":0,"hitByPitch":0,"sacBunts":0,"sacFlies":0,"stolenBases":0,"caughtStealing":0,"groundIntoDoublePlay":0}}`
	// The stored event id of fx.other is "ev-other": match it.
	bare = strings.Replace(bare, statevent.DeterministicEventID(605141, "G2", 3), "ev-other", 1)
	file := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(file, []byte(edited+"\n"+bare+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	if out, err := replay(t, e, srv.URL, dlq.ReplayCommand{FromFile: file}); err == nil {
		t.Fatalf("a replay without the key got through:\n%s", out)
	}
	if marked(t, e, fx.old).replayed {
		t.Fatal("marked although the gateway refused the request")
	}
	out, err := replay(t, e, srv.URL, dlq.ReplayCommand{FromFile: file, Flags: credential.Flags{APIKey: "s3cret"}})
	if err != nil || !strings.Contains(out, "2 replayed") {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	sent := accepted(g)
	old := sent[statevent.DeterministicEventID(660271, "G1", 2)]
	if old.GetBatting().GetHits() != 2 {
		t.Fatalf("the edited line was not sent as edited: %v", old)
	}
	// The edited version 9 is above the stored 3: kept.
	other := sent[statevent.DeterministicEventID(605141, "G2", 9)]
	if other == nil || other.GetGame().GetHomeAway() != statsv1.HomeAway_HOME_AWAY_AWAY {
		t.Fatalf("the bare edited event was not sent at its own version 9: %v", sent)
	}
	if m := marked(t, e, fx.other); m.version != 9 {
		t.Fatalf("other marked %+v", m)
	}
	if keys[len(keys)-1] != "Bearer s3cret" {
		t.Fatalf("Authorization headers seen: %q", keys)
	}

	// A line naming no dead letter is refused before anything is sent.
	if err := os.WriteFile(file, []byte(strings.Replace(bare, "ev-other", "nobody", 1)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := replay(t, e, srv.URL, dlq.ReplayCommand{FromFile: file, Flags: credential.Flags{APIKey: "s3cret"}}); err == nil || !strings.Contains(err.Error(), `event id "nobody"`) {
		t.Fatalf("an unmatched line: %v", err)
	}
}

func TestReplayDryRunSendsAndMarksNothing(t *testing.T) {
	e := newEnv(t)
	fx := seed(t, e)
	g := gatewaytest.Start(t)
	out, err := replay(t, e, g.URL, dlq.ReplayCommand{IDs: []int64{fx.old}, DryRun: true})
	if err != nil || !strings.Contains(out, "would-replay") || !strings.Contains(out, "version 2") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if len(g.Requests()) != 0 || marked(t, e, fx.old).replayed {
		t.Fatal("a dry run sent or marked")
	}
}
