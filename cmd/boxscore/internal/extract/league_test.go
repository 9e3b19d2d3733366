package extract

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"google.golang.org/protobuf/proto"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/gamelog"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/ingestclient/gatewaytest"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
)

// Clocks of the fake: the night after 2024-04-11 (746105 still in progress, 746102 as
// scored at the game's end), and the next afternoon (746105 final, Devers' single of
// 746102 changed to an error at 20240412_150000).
const (
	clockNight     = "20240412_030000"
	clockAfternoon = "20240412_180000"
)

func micros(t *testing.T, tc string) int64 {
	t.Helper()
	at, err := ParseTimecode(tc)
	if err != nil {
		t.Fatal(err)
	}
	return at.UnixMicro()
}

func extractLeague(t *testing.T, api *fakeStatsAPI, from, to string) *LeagueResult {
	t.Helper()
	res, err := ExtractLeague(context.Background(), fastClient(t, api.URL), LeagueQuery{From: from, To: to, GameType: "R", Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// byPlayerGame indexes rows by "player/game".
func byPlayerGame(t *testing.T, rows []gamelog.Row) map[string]gamelog.Row {
	t.Helper()
	m := map[string]gamelog.Row{}
	for _, r := range rows {
		k := fmt.Sprintf("%d/%s", r.PlayerID, r.GameID)
		if _, dup := m[k]; dup {
			t.Errorf("two lines for player %d in game %s", r.PlayerID, r.GameID)
		}
		m[k] = r
	}
	return m
}

func TestLeagueReadsEveryBatterOfEveryFinalGame(t *testing.T) {
	api := newFakeStatsAPI(t)
	api.setClock(clockNight)
	res := extractLeague(t, api, "2024-04-10", "2024-04-11")

	if res.Listed != 7 || res.Read != 6 || len(res.Rows) != 32 || res.Corrections != 0 || len(res.Failed) != 0 {
		t.Errorf("listed %d, read %d, lines %d, corrections %d, failed %v; want 7, 6, 32, 0, none",
			res.Listed, res.Read, len(res.Rows), res.Corrections, res.Failed)
	}
	// Only the game in progress is skipped: the postponed entry of 746101 and the suspended
	// one of 746103 are the same games as their makeup and completion, read once.
	if len(res.Skipped) != 1 || res.Skipped[0].GamePk != 746105 || !strings.Contains(res.Skipped[0].Reason, "not final (In Progress)") ||
		res.Skipped[0].Teams != "SEA @ HOU" {
		t.Errorf("skipped %+v, want only 746105 SEA @ HOU, not final", res.Skipped)
	}
	assertValidEvents(t, res.Rows)
	rows := byPlayerGame(t, res.Rows)
	get := func(player int64, game string) gamelog.Row {
		t.Helper()
		r, ok := rows[fmt.Sprintf("%d/%s", player, game)]
		if !ok {
			t.Fatalf("no line for player %d in game %s", player, game)
		}
		return r
	}
	absent := func(player int64, game, why string) {
		t.Helper()
		if _, ok := rows[fmt.Sprintf("%d/%s", player, game)]; ok {
			t.Errorf("player %d has a line in game %s, but %s", player, game, why)
		}
	}

	// A doubleheader: two games, two ids, numbered 1 and 2; game 1 is the makeup of the
	// game postponed on 2024-04-10 and keeps its gamePk.
	g1, g2 := get(660271, "746101"), get(660271, "746104")
	if g1.GameNumber != 1 || g2.GameNumber != 2 || g1.GameDate != "2024-04-11" || g2.GameDate != "2024-04-11" {
		t.Errorf("doubleheader: game numbers %d and %d on %s and %s, want 1 and 2 on 2024-04-11", g1.GameNumber, g2.GameNumber, g1.GameDate, g2.GameDate)
	}
	if g1.Event(Source).GetEventId() == g2.Event(Source).GetEventId() {
		t.Error("the two games of the doubleheader have the same event id")
	}
	want := gamelog.Row{Season: 2024, GameDate: "2024-04-11", GameID: "746101", GameNumber: 1, PlayerID: 660271, PlayerName: "Shohei Ohtani",
		Team: "LAD", Opponent: "MIN", Home: true, Version: micros(t, "20240411_230000"),
		PlateAppearances: 4, AtBats: 3, Runs: 2, Hits: 2, HomeRuns: 1, RBI: 3, BaseOnBalls: 1, StolenBases: 1, TotalBases: ptr(5)}
	if !reflect.DeepEqual(g1, want) {
		t.Errorf("Ohtani, game 746101:\n got %+v\nwant %+v", g1, want)
	}
	if r := get(605141, "746101"); r.Doubles != 1 || *r.TotalBases != 2 {
		t.Errorf("Betts, game 746101: %+v", r)
	}

	// A single game is number 0; a game completed the day after its suspension is read
	// once, dated by the day it was completed, with the whole game's line.
	if r := get(592450, "746102"); r.GameNumber != 0 || r.GameDate != "2024-04-10" || r.Team != "NYY" || r.Opponent != "BOS" || r.Home {
		t.Errorf("Judge, game 746102: %+v", r)
	}
	if r := get(660670, "746103"); r.GameDate != "2024-04-11" || r.GameNumber != 0 || r.PlateAppearances != 5 || r.StolenBases != 2 {
		t.Errorf("Acuña, suspended game 746103: %+v, want the completed game's line on 2024-04-11", r)
	}

	// A traded player bats for the team of each game.
	if mia, nyy := get(665862, "746106"), get(665862, "746107"); mia.Team != "MIA" || mia.Opponent != "PHI" || nyy.Team != "NYY" || nyy.Opponent != "TOR" {
		t.Errorf("Chisholm: %s vs %s, then %s vs %s; want MIA vs PHI, then NYY vs TOR", mia.Team, mia.Opponent, nyy.Team, nyy.Opponent)
	}

	// Who is a batter: a pitcher in the batting order bats; an infielder who pitched keeps
	// his line; a pinch runner without a plate appearance has a line of zeros and his run
	// and steal; pitchers who did not bat, a bench player with an empty line, a player with
	// a line of zeros outside the batting order, a starter who sat out game 2 have none.
	if r := get(808967, "746101"); r.PlateAppearances != 2 || r.StrikeOuts != 2 {
		t.Errorf("Yamamoto (pitcher batting): %+v", r)
	}
	if r := get(571771, "746104"); r.PlateAppearances != 3 || r.Hits != 1 {
		t.Errorf("Hernández (position player pitching): %+v", r)
	}
	if r := get(500743, "746104"); r.PlateAppearances != 0 || r.Runs != 1 || r.StolenBases != 1 {
		t.Errorf("Rojas (pinch runner): %+v", r)
	}
	absent(607192, "746101", "he pitched without batting")
	absent(641154, "746101", "he pitched without batting")
	absent(668904, "746101", "his line is zeros outside the batting order")
	absent(605141, "746104", "he sat out game 2")

	// Versions: the timecode at which each game ended (the first at or after its last play).
	for game, tc := range map[string]string{"746102": "20240411_013500", "746101": "20240411_230000", "746104": "20240412_021000",
		"746103": "20240411_183000", "746106": "20240411_004000", "746107": "20240412_014500"} {
		for _, r := range res.Rows {
			if r.GameID == game && r.Version != micros(t, tc) {
				t.Errorf("player %d, game %s: version %d, want %d (%s)", r.PlayerID, game, r.Version, micros(t, tc), tc)
			}
		}
	}
}

func ptr(n int) *int { return &n }

func TestLeagueReportsPostponedSuspendedAndNotFinalGamesAndReadsThemLater(t *testing.T) {
	api := newFakeStatsAPI(t)
	// An hour after midnight UTC on 2024-04-11: 746102 is over by the schedule but its
	// live feed still says in progress; 746106 is final.
	api.setClock("20240411_010000")
	res := extractLeague(t, api, "2024-04-10", "2024-04-10")
	reasons := map[int64]string{}
	for _, s := range res.Skipped {
		reasons[s.GamePk] = s.Reason
	}
	for pk, want := range map[int64]string{
		746101: "postponed (Rain), rescheduled to 2024-04-11",
		746103: "suspended (Suspended: Rain), completed on 2024-04-11",
		746102: "not final in its live feed (In Progress)",
	} {
		if !strings.Contains(reasons[pk], want) {
			t.Errorf("game %d: skipped %q, want %q", pk, reasons[pk], want)
		}
	}
	if res.Read != 1 || len(res.Skipped) != 3 || len(res.Rows) != 5 {
		t.Errorf("read %d games, skipped %d, %d lines; want 1 (746106), 3, 5", res.Read, len(res.Skipped), len(res.Rows))
	}
	for _, r := range res.Rows {
		if r.GameID != "746106" {
			t.Errorf("a line of game %s, which is not final", r.GameID)
		}
	}

	// The next runs pick them up once final.
	api.setClock(clockNight)
	if res := extractLeague(t, api, "2024-04-10", "2024-04-11"); !hasGame(res.Rows, "746102") || hasGame(res.Rows, "746105") {
		t.Errorf("at night: 746102 read %t (want true), 746105 read %t (want false)", hasGame(res.Rows, "746102"), hasGame(res.Rows, "746105"))
	}
	api.setClock(clockAfternoon)
	if res := extractLeague(t, api, "2024-04-11", "2024-04-11"); !hasGame(res.Rows, "746105") || len(res.Skipped) != 0 {
		t.Errorf("the next afternoon: 746105 read %t, skipped %+v", hasGame(res.Rows, "746105"), res.Skipped)
	}
}

func hasGame(rows []gamelog.Row, game string) bool {
	for _, r := range rows {
		if r.GameID == game {
			return true
		}
	}
	return false
}

// runLeague posts the window through cmd and returns the events the gateway accepted in
// that run.
func runLeague(t *testing.T, cmd *Command, gw *gatewaytest.Gateway) ([]*statsv1.StatEvent, string) {
	t.Helper()
	before := len(gw.Accepted())
	var stdout, stderr bytes.Buffer
	if err := cmd.Run(context.Background(), &stdout, &stderr); err != nil {
		t.Fatalf("%v\nstdout: %s\nstderr: %s", err, &stdout, &stderr)
	}
	return gw.Accepted()[before:], stderr.String()
}

func eventsByID(events []*statsv1.StatEvent) map[string]*statsv1.StatEvent {
	m := map[string]*statsv1.StatEvent{}
	for _, ev := range events {
		m[ev.GetEventId()] = ev
	}
	return m
}

func TestLeagueExtractedTwiceSendsNothingNew(t *testing.T) {
	api := newFakeStatsAPI(t)
	api.setClock(clockNight)
	gw := gatewaytest.Start(t)
	cmd := leagueCommand(t, api, gw.URL)

	first, summary := runLeague(t, cmd, gw)
	mustContain(t, summary, "extracted 2024-04-10 to 2024-04-11", "games listed   7", "games read     6", "lines          32",
		"corrections    0", "games skipped  1", "skipped: 2024-04-11 game 746105 SEA @ HOU: not final (In Progress)")
	second, _ := runLeague(t, cmd, gw)
	if len(first) != 32 || len(second) != 32 {
		t.Fatalf("sent %d then %d events, want 32 each", len(first), len(second))
	}
	firstByID := eventsByID(first)
	for _, ev := range second {
		prev, ok := firstByID[ev.GetEventId()]
		if !ok {
			t.Errorf("the second run sent a new event: player %d, game %s, version %d", ev.GetPlayer().GetMlbId(), ev.GetGame().GetGameId(), ev.GetVersion())
			continue
		}
		if !proto.Equal(prev, ev) {
			t.Errorf("event %s differs between runs:\n%v\n%v", ev.GetEventId(), prev, ev)
		}
	}
	if len(eventsByID(append(first, second...))) != 32 {
		t.Errorf("%d distinct event ids after two runs, want 32", len(eventsByID(append(first, second...))))
	}
	for _, req := range api.requests {
		if ua := req.Header.Get("User-Agent"); !strings.HasPrefix(ua, "boxscore/") || !strings.HasSuffix(ua, "(+https://github.com/boxscore-dev/boxscore)") {
			t.Errorf("User-Agent %q", ua)
		}
	}
}

func TestLeagueScoringChangeReplacesExactlyOneLine(t *testing.T) {
	api := newFakeStatsAPI(t)
	api.setClock(clockNight)
	gw := gatewaytest.Start(t)
	cmd := leagueCommand(t, api, gw.URL)
	cmd.From, cmd.To = "2024-04-10", "2024-04-10"

	before, _ := runLeague(t, cmd, gw)
	api.setClock(clockAfternoon)
	after, summary := runLeague(t, cmd, gw)
	mustContain(t, summary, "corrections    1")

	key := func(ev *statsv1.StatEvent) string {
		return fmt.Sprintf("%d/%s", ev.GetPlayer().GetMlbId(), ev.GetGame().GetGameId())
	}
	old := map[string]*statsv1.StatEvent{}
	for _, ev := range before {
		old[key(ev)] = ev
	}
	if len(after) != len(before) || len(before) != 10 {
		t.Fatalf("sent %d then %d lines, want 10 each (746102 and 746106)", len(before), len(after))
	}
	changed := 0
	for _, ev := range after {
		prev := old[key(ev)]
		if prev == nil {
			t.Fatalf("a new line after the scoring change: %s", key(ev))
		}
		if proto.Equal(prev, ev) {
			continue
		}
		changed++
		if key(ev) != "646240/746102" {
			t.Errorf("line %s changed, but only Devers' (646240/746102) was rescored:\n%v\n%v", key(ev), prev, ev)
			continue
		}
		if ev.GetVersion() != micros(t, "20240412_150000") || ev.GetVersion() <= prev.GetVersion() {
			t.Errorf("Devers' version went from %d to %d, want %d (the change's timecode)", prev.GetVersion(), ev.GetVersion(), micros(t, "20240412_150000"))
		}
		if ev.GetBatting().GetHits() != 1 || prev.GetBatting().GetHits() != 2 || ev.GetEventId() == prev.GetEventId() {
			t.Errorf("Devers: hits %d -> %d, ids %s -> %s", prev.GetBatting().GetHits(), ev.GetBatting().GetHits(), prev.GetEventId(), ev.GetEventId())
		}
	}
	if changed != 1 {
		t.Errorf("%d lines changed, want exactly 1", changed)
	}

	// Reading it again later sends the corrected line with the same version.
	again, _ := runLeague(t, cmd, gw)
	if !reflect.DeepEqual(eventsByID(again), eventsByID(after)) {
		t.Error("a third run sent other events than the second")
	}
}

// uniqueLines checks that the events, deduplicated by id as the pipeline does, hold each
// (player, game) once, with one content per id, and returns them by id.
func uniqueLines(t *testing.T, events []*statsv1.StatEvent) map[string]*statsv1.StatEvent {
	t.Helper()
	byID := map[string]*statsv1.StatEvent{}
	lines := map[string]string{}
	for _, ev := range events {
		if prev, ok := byID[ev.GetEventId()]; ok && !proto.Equal(prev, ev) {
			t.Errorf("event id %s was sent with two contents", ev.GetEventId())
		}
		byID[ev.GetEventId()] = ev
		k := fmt.Sprintf("%d/%s", ev.GetPlayer().GetMlbId(), ev.GetGame().GetGameId())
		if id, ok := lines[k]; ok && id != ev.GetEventId() {
			t.Errorf("line %s was sent under two ids (%s, %s)", k, id, ev.GetEventId())
		}
		lines[k] = ev.GetEventId()
	}
	return byID
}

func TestLeagueRunFailingHalfwayThenRerunSendsEveryLineOnce(t *testing.T) {
	api := newFakeStatsAPI(t)
	api.setClock(clockNight)
	clean := gatewaytest.Start(t)
	want, _ := runLeague(t, leagueCommand(t, api, clean.URL), clean)

	t.Run("source failing midway", func(t *testing.T) {
		gw := gatewaytest.Start(t)
		cmd := leagueCommand(t, api, gw.URL)
		// Game 746104's feed answers 500 on every attempt of this run.
		for range DefaultMaxAttempts {
			api.answerPathFirst("/api/v1.1/game/746104/feed/live", status(http.StatusInternalServerError, `{"message":"boom"}`))
		}
		var stdout, stderr bytes.Buffer
		err := cmd.Run(context.Background(), &stdout, &stderr)
		mustContain(t, errString(err), "1 games could not be read")
		mustContain(t, stderr.String(), "games failed   1", "failed:  2024-04-11 game 746104 MIN @ LAD", "HTTP 500")
		if n := len(gw.Accepted()); n != 25 {
			t.Errorf("the failing run sent %d lines, want the 25 of the games it could read", n)
		}
		runLeague(t, cmd, gw)
		assertSameLines(t, uniqueLines(t, gw.Accepted()), want)
	})

	t.Run("killed while reading the source", func(t *testing.T) {
		gw := gatewaytest.Start(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		api.answerPathFirst("/api/v1.1/game/746107/feed/live", func(w http.ResponseWriter, _ *http.Request) {
			cancel() // the CronJob's pod is stopped while this game is read
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		cmd := leagueCommand(t, api, gw.URL)
		var stdout, stderr bytes.Buffer
		err := cmd.Run(ctx, &stdout, &stderr)
		mustContain(t, errString(err), "context canceled")
		if n := len(gw.Accepted()); n != 0 {
			t.Errorf("a run killed before posting sent %d lines", n)
		}
		runLeague(t, cmd, gw)
		assertSameLines(t, uniqueLines(t, gw.Accepted()), want)
	})

	t.Run("gateway connection cut midway", func(t *testing.T) {
		gw := gatewaytest.Start(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// A proxy in front of the gateway cancels the run once the second batch is through.
		target, err := url.Parse(gw.URL)
		if err != nil {
			t.Fatal(err)
		}
		proxy := httputil.NewSingleHostReverseProxy(target)
		var batches atomic.Int32
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			proxy.ServeHTTP(w, r)
			if batches.Add(1) == 2 {
				cancel()
			}
		}))
		t.Cleanup(front.Close)
		cmd := leagueCommand(t, api, front.URL)
		cmd.batchEvents = 5
		var stdout, stderr bytes.Buffer
		if err := cmd.Run(ctx, &stdout, &stderr); err == nil {
			t.Fatal("the cancelled run succeeded")
		}
		if n := len(gw.Accepted()); n == 0 || n >= 32 {
			t.Fatalf("the cancelled run sent %d lines, want some but not all 32", n)
		}
		runLeague(t, cmd, gw)
		assertSameLines(t, uniqueLines(t, gw.Accepted()), want)
	})
}

func assertSameLines(t *testing.T, got map[string]*statsv1.StatEvent, want []*statsv1.StatEvent) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d distinct events at the gateway, want %d", len(got), len(want))
	}
	for _, ev := range want {
		if g, ok := got[ev.GetEventId()]; !ok || !proto.Equal(g, ev) {
			t.Errorf("event %s (player %d, game %s) missing or different", ev.GetEventId(), ev.GetPlayer().GetMlbId(), ev.GetGame().GetGameId())
		}
	}
}

func TestLeagueSnapshotsAreFetchedOnceAndOthersRevalidated(t *testing.T) {
	api := newFakeStatsAPI(t)
	api.setClock(clockAfternoon)
	client := fastClient(t, api.URL)
	for range 2 {
		if _, err := ExtractLeague(context.Background(), client, LeagueQuery{From: "2024-04-10", To: "2024-04-10", GameType: "R", Concurrency: 2}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	conditional := 0
	for _, r := range api.requests {
		if r.URL.Query().Get("timecode") != "" {
			seen[r.URL.String()]++
		}
		if r.Header.Get("If-None-Match") != "" {
			conditional++
		}
	}
	if len(seen) == 0 {
		t.Fatal("no snapshot at a timecode was read: the scoring change was not searched for")
	}
	for u, n := range seen {
		if n != 1 {
			t.Errorf("%s fetched %d times, want once (a snapshot never changes)", u, n)
		}
	}
	// The second pass revalidates the schedule, the feeds and the timestamps: all 304.
	if conditional == 0 || api.notModified != conditional {
		t.Errorf("%d conditional requests, %d answered 304; want every one of the second pass", conditional, api.notModified)
	}
}

func TestLeagueRetriesTheSourceAndHonoursTheRateLimit(t *testing.T) {
	api := newFakeStatsAPI(t)
	api.setClock(clockNight)
	api.answerPathFirst("/api/v1/schedule", status(http.StatusTooManyRequests, `{"message":"slow down"}`), status(http.StatusBadGateway, ""))
	api.answerPathFirst("/api/v1.1/game/746106/feed/live/timestamps", status(http.StatusServiceUnavailable, ""))
	var retries atomic.Int32
	client := fastClient(t, api.URL, WithRateLimit(50, 1), WithRetryNotify(func(error, time.Duration) { retries.Add(1) }))
	started := time.Now()
	res, err := ExtractLeague(context.Background(), client, LeagueQuery{From: "2024-04-10", To: "2024-04-10", GameType: "R", Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	if res.Read != 2 || len(res.Failed) != 0 || retries.Load() != 3 {
		t.Errorf("read %d games, failed %v, %d retries; want 2, none, 3", res.Read, res.Failed, retries.Load())
	}
	if n := api.requestsTo("/api/v1/schedule"); n != 3 {
		t.Errorf("%d schedule requests, want 3 (429, 502, then the schedule)", n)
	}
	// At 50 requests a second with a burst of 1, n requests take at least (n-1)/50 s.
	if n := api.requestCount(); time.Since(started) < time.Duration(n-1)*20*time.Millisecond {
		t.Errorf("%d requests in %s: faster than the rate limit", n, time.Since(started))
	}
}

func TestLeagueFlags(t *testing.T) {
	var cli struct {
		Extract Command `cmd:""`
	}
	parser, err := kong.New(&cli, kong.Exit(func(int) { t.Fatal("kong exited") }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.Parse([]string{"extract", "--date", "2024-04-11", "--team", "lad", "--post"}); err != nil {
		t.Fatal(err)
	}
	got := cli.Extract
	from, to, err := got.window()
	if err != nil || from != "2024-04-08" || to != "2024-04-11" || got.GameType != "R" || got.LookBack != 3 || got.Concurrency != 4 || got.RateLimit != 5 {
		t.Errorf("parsed %+v, window %s to %s, %v", got, from, to, err)
	}
	if id, err := got.teamID(); id != 119 || err != nil {
		t.Errorf("--team lad = %d, %v", id, err)
	}

	// today/yesterday are read in --time-zone: 03:00 UTC on the 12th is the 11th in New York.
	c := Command{Date: "yesterday", LookBack: 0, TimeZone: "America/New_York", now: func() time.Time { return time.Date(2024, 4, 12, 3, 0, 0, 0, time.UTC) }}
	if from, to, err := c.window(); err != nil || from != "2024-04-10" || to != "2024-04-10" {
		t.Errorf("yesterday at 2024-04-12T03:00Z in New York: %s to %s, %v", from, to, err)
	}

	for name, args := range map[string][]string{
		"date and from":     {"extract", "--date", "2024-04-11", "--from", "2024-04-01", "--to", "2024-04-02"},
		"from without to":   {"extract", "--from", "2024-04-01"},
		"to before from":    {"extract", "--from", "2024-04-02", "--to", "2024-04-01"},
		"bad date":          {"extract", "--date", "11/04/2024"},
		"player and date":   {"extract", "--date", "2024-04-11", "--player", "1"},
		"unknown team":      {"extract", "--date", "2024-04-11", "--team", "XYZ"},
		"negative lookback": {"extract", "--date", "2024-04-11", "--look-back", "-1"},
		"zero concurrency":  {"extract", "--date", "2024-04-11", "--concurrency", "0"},
		"too long":          {"extract", "--from", "2023-01-01", "--to", "2024-12-31"},
		"bad time zone":     {"extract", "--date", "today", "--time-zone", "Mars/Olympus"},
	} {
		cli.Extract = Command{}
		if _, err := parser.Parse(args); err == nil {
			t.Errorf("%s: %q parsed", name, args)
		}
	}
}

func TestLeagueTeamFilterAndCSV(t *testing.T) {
	api := newFakeStatsAPI(t)
	api.setClock(clockNight)
	cmd := leagueCommand(t, api, "")
	cmd.Team = "MIA"
	var stdout, stderr bytes.Buffer
	if err := cmd.Run(context.Background(), &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, &stderr)
	}
	rows := readRows(t, &stdout)
	if len(rows) != 5 {
		t.Fatalf("%d rows, want the 5 of 746106 (both teams)", len(rows))
	}
	for _, r := range rows {
		if r.GameID != "746106" {
			t.Errorf("row of game %s with --team MIA", r.GameID)
		}
	}
	if got := api.lastScheduleQuery(t); got.Get("teamId") != "146" || got.Get("gameType") != "R" || got.Get("startDate") != "2024-04-10" {
		t.Errorf("schedule query %v", got)
	}
}

func (f *fakeStatsAPI) lastScheduleQuery(t *testing.T) url.Values {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.requests) - 1; i >= 0; i-- {
		if f.requests[i].URL.Path == "/api/v1/schedule" {
			return f.requests[i].URL.Query()
		}
	}
	t.Fatal("no schedule request")
	return nil
}

func TestCacheKeepsTheNewestAnswersWithinItsLimit(t *testing.T) {
	api := newFakeStatsAPI(t)
	api.setClock(clockNight)
	ctx := context.Background()
	// Room for one of the two snapshots, not both: reading both keeps only the second.
	probe := fastClient(t, api.URL)
	largest := 0
	for _, pk := range []int64{746102, 746106} {
		if _, err := probe.LiveFeed(ctx, pk, "20240411_004000"); err != nil {
			t.Fatal(err)
		}
		largest = max(largest, probe.cacheBytes-largest)
	}
	if probe.cacheBytes <= largest {
		t.Fatalf("probe cache %d bytes, largest %d", probe.cacheBytes, largest)
	}
	client := fastClient(t, api.URL, WithCacheBytes(probe.cacheBytes-1))
	for _, pk := range []int64{746102, 746106} {
		if _, err := client.LiveFeed(ctx, pk, "20240411_004000"); err != nil {
			t.Fatal(err)
		}
	}
	before := api.requestCount()
	if _, err := client.LiveFeed(ctx, 746106, "20240411_004000"); err != nil {
		t.Fatal(err)
	}
	if _, err := client.LiveFeed(ctx, 746102, "20240411_004000"); err != nil {
		t.Fatal(err)
	}
	if n := api.requestCount() - before; n != 1 {
		t.Errorf("%d requests for a cached and an evicted snapshot, want 1", n)
	}
	if client.cacheBytes > client.cacheLimit {
		t.Errorf("the cache holds %d bytes, above its limit %d", client.cacheBytes, client.cacheLimit)
	}
}

func TestNotPlayedHereReadsEitherDateField(t *testing.T) {
	suspended := GameStatus{CodedGameState: "U", DetailedState: "Suspended: Rain"}
	for name, tc := range map[string]struct {
		game ScheduledGame
		want string
	}{
		"final":                    {ScheduledGame{OfficialDate: "2024-04-10", Status: GameStatus{CodedGameState: "F"}}, ""},
		"suspended, date-time":     {ScheduledGame{OfficialDate: "2024-04-10", Status: suspended, ResumeDate: "2024-04-11T17:10:00Z"}, "completed on 2024-04-11"},
		"suspended, date":          {ScheduledGame{OfficialDate: "2024-04-10", Status: suspended, ResumeGameDate: "2024-04-11"}, "completed on 2024-04-11"},
		"resumed the same day":     {ScheduledGame{OfficialDate: "2024-04-10", Status: GameStatus{CodedGameState: "F"}, ResumeGameDate: "2024-04-10"}, ""},
		"postponed, date only":     {ScheduledGame{OfficialDate: "2024-04-10", Status: GameStatus{CodedGameState: "D", Reason: "Snow"}, RescheduleGameDate: "2024-06-01"}, "postponed (Snow), rescheduled to 2024-06-01"},
		"postponed, no makeup yet": {ScheduledGame{OfficialDate: "2024-04-10", Status: GameStatus{CodedGameState: "D"}}, "postponed"},
		"cancelled":                {ScheduledGame{OfficialDate: "2024-04-10", Status: GameStatus{CodedGameState: "C", DetailedState: "Cancelled"}}, "cancelled: Cancelled"},
	} {
		got := notPlayedHere(tc.game)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", name, got, tc.want)
		}
	}
}
