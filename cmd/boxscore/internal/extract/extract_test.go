package extract

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/gamelog"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// line builds an expected row. The counts are PA AB R H 2B 3B HR RBI BB IBB SO HBP SH SF SB
// CS GIDP, then total bases.
func line(playerID int64, name, date, gameID string, gameNumber int, home bool, team, opponent string, c ...int) gamelog.Row {
	tb := c[17]
	return gamelog.Row{
		Season: 2024, GameDate: date, GameID: gameID, GameNumber: gameNumber, PlayerID: playerID, PlayerName: name,
		Team: team, Opponent: opponent, Home: home, Version: 1,
		PlateAppearances: c[0], AtBats: c[1], Runs: c[2], Hits: c[3], Doubles: c[4], Triples: c[5], HomeRuns: c[6],
		RBI: c[7], BaseOnBalls: c[8], IntentionalWalks: c[9], StrikeOuts: c[10], HitByPitch: c[11], SacBunts: c[12],
		SacFlies: c[13], StolenBases: c[14], CaughtStealing: c[15], GroundIntoDoublePlay: c[16], TotalBases: &tb,
	}
}

// wantNormal is the fixture of playerNormal, spelt out: its spring-training game is skipped.
var wantNormal = []gamelog.Row{
	line(660271, "Shohei Ohtani", "2024-03-20", "745001", 0, false, "LAD", "SD", 5, 5, 1, 2, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 3),
	line(660271, "Shohei Ohtani", "2024-03-21", "745002", 0, false, "LAD", "SD", 4, 3, 0, 0, 0, 0, 0, 0, 1, 1, 2, 0, 0, 0, 0, 0, 1, 0),
	line(660271, "Shohei Ohtani", "2024-03-28", "745003", 0, true, "LAD", "STL", 5, 4, 2, 3, 0, 1, 1, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0, 8),
	line(660271, "Shohei Ohtani", "2024-03-29", "745004", 0, true, "LAD", "STL", 4, 3, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 1, 0, 1),
	line(660271, "Shohei Ohtani", "2024-04-01", "745005", 0, true, "LAD", "SF", 4, 4, 0, 1, 0, 0, 0, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1),
}

func readRows(t *testing.T, r io.Reader) []gamelog.Row {
	t.Helper()
	rd, err := gamelog.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	var rows []gamelog.Row
	for {
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return rows
		}
		if err != nil {
			t.Fatalf("read back: %v", err)
		}
		rows = append(rows, row)
	}
}

func extractRows(t *testing.T, api *fakeStatsAPI, playerID int64) []gamelog.Row {
	t.Helper()
	splits, err := fastClient(t, api.URL).GameLog(context.Background(), playerID, 2024, GameTypeRegularSeason)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := Rows(playerID, 2024, GameTypeRegularSeason, splits)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// gameNumbers lists "date game_id game_number" for each row.
func gameNumbers(rows []gamelog.Row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.GameDate + " " + r.GameID + " " + string(rune('0'+r.GameNumber))
	}
	return out
}

func assertValidEvents(t *testing.T, rows []gamelog.Row) {
	t.Helper()
	for _, r := range rows {
		ev := r.Event(Source)
		if vs := append(statevent.ValidateShape(ev), statevent.CheckConsistency(ev)...); len(vs) > 0 {
			t.Errorf("%s game %s: %v", r.PlayerName, r.GameID, vs)
		}
	}
}

func TestNormalPlayerMapsEveryFieldAndSkipsOtherGameTypes(t *testing.T) {
	api := newFakeStatsAPI(t)
	rows := extractRows(t, api, playerNormal)
	if !reflect.DeepEqual(rows, wantNormal) {
		t.Fatalf("rows:\n%+v\nwant:\n%+v", rows, wantNormal)
	}
	assertValidEvents(t, rows)

	req := api.lastRequest()
	if req.URL.Path != "/api/v1/people/660271/stats" {
		t.Errorf("path = %s", req.URL.Path)
	}
	q := req.URL.Query()
	if q.Get("stats") != "gameLog" || q.Get("group") != "hitting" || q.Get("season") != "2024" || q.Get("gameType") != "R" {
		t.Errorf("query = %s", req.URL.RawQuery)
	}
	if ua := req.Header.Get("User-Agent"); !strings.HasPrefix(ua, "boxscore/") {
		t.Errorf("User-Agent = %q", ua)
	}
}

func TestDoubleheaderIsNumberedOneAndTwo(t *testing.T) {
	rows := extractRows(t, newFakeStatsAPI(t), playerDoubleheader)
	want := []string{
		"2024-04-05 745101 0",
		"2024-04-06 745102 1",
		"2024-04-06 745103 2",
		"2024-04-07 745104 0",
		"2024-05-18 745105 2", // the player sat out game 1: the API says game 2, and so does the row
	}
	if got := gameNumbers(rows); !reflect.DeepEqual(got, want) {
		t.Fatalf("game numbers = %q, want %q", got, want)
	}
	assertValidEvents(t, rows)
}

func TestPostponedGameAppearsOnItsMakeupDateInADoubleheader(t *testing.T) {
	// Game 745202 was scheduled on 2024-04-10, postponed and made up on 2024-04-11 as game 1
	// of a doubleheader: it keeps its id and has no row on 2024-04-10.
	rows := extractRows(t, newFakeStatsAPI(t), playerPostponed)
	want := []string{
		"2024-04-09 745201 0",
		"2024-04-11 745202 1",
		"2024-04-11 745203 2",
		"2024-04-12 745204 0",
	}
	if got := gameNumbers(rows); !reflect.DeepEqual(got, want) {
		t.Fatalf("game numbers = %q, want %q", got, want)
	}
	for _, r := range rows {
		if r.GameDate == "2024-04-10" {
			t.Errorf("a row on the postponed date: %+v", r)
		}
	}
	assertValidEvents(t, rows)
}

func TestGameNumbersComeFromTheAPINotTheOrder(t *testing.T) {
	yes := true
	split := func(pk int64, date string, gameNumber int) Split {
		n := func(v int) *int { return &v }
		return Split{Season: "2024", Date: date, GameType: "R", IsHome: &yes,
			Team: Club{ID: 119}, Opponent: Club{ID: 147}, Player: Person{ID: 1, FullName: "A Player"},
			Game: GameRef{GamePk: pk, GameNumber: gameNumber},
			Stat: HittingStat{n(1), n(1), n(0), n(0), n(0), n(0), n(0), n(0), n(0), n(0), n(0), n(0), n(0), n(0), n(0), n(0), n(0), nil}}
	}
	rows, err := Rows(1, 2024, "R", []Split{split(20, "2024-06-02", 2), split(10, "2024-06-02", 1), split(5, "2024-06-01", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := gameNumbers(rows), []string{"2024-06-01 5 0", "2024-06-02 10 1", "2024-06-02 20 2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("game numbers = %q, want %q", got, want)
	}
	if rows[0].TotalBases != nil {
		t.Errorf("absent totalBases became %d", *rows[0].TotalBases)
	}

	for name, tc := range map[string]struct {
		splits []Split
		want   string
	}{
		"same game number twice": {[]Split{split(10, "2024-06-02", 1), split(20, "2024-06-02", 1)}, "both have game number 1"},
		"three games in a day":   {[]Split{split(10, "2024-06-02", 1), split(20, "2024-06-02", 2), split(30, "2024-06-02", 2)}, "3 games on 2024-06-02"},
		"game number 0":          {[]Split{split(10, "2024-06-02", 0)}, "game number 0 is neither 1 nor 2"},
		"one game twice":         {[]Split{split(10, "2024-06-02", 1), split(10, "2024-06-03", 1)}, "in the log twice"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Rows(1, 2024, "R", tc.splits)
			if err == nil {
				t.Fatal("no error")
			}
			mustContain(t, err.Error(), "player 1", "season 2024", tc.want)
		})
	}
}

func TestMissingOrWrongFieldsAreErrorsNamingTheGame(t *testing.T) {
	base := func() Split {
		yes := true
		n := func(v int) *int { return &v }
		return Split{Season: "2024", Date: "2024-06-01", GameType: "R", IsHome: &yes,
			Team: Club{ID: 119}, Opponent: Club{ID: 147}, Player: Person{ID: 7, FullName: "A Player"},
			Game: GameRef{GamePk: 99, GameNumber: 1},
			Stat: HittingStat{n(1), n(1), n(0), n(0), n(0), n(0), n(0), n(0), n(0), n(0), n(0), n(0), n(0), n(0), n(0), n(0), n(0), n(0)}}
	}
	for name, tc := range map[string]struct {
		change func(*Split)
		want   string
	}{
		"missing count":   {func(s *Split) { s.Stat.SacFlies = nil }, "stat.sacFlies is missing"},
		"negative count":  {func(s *Split) { v := -1; s.Stat.Hits = &v }, "stat.hits is negative"},
		"missing isHome":  {func(s *Split) { s.IsHome = nil }, "isHome is missing"},
		"missing gamePk":  {func(s *Split) { s.Game.GamePk = 0 }, "(game 0 on 2024-06-01): game.gamePk is missing"},
		"bad date":        {func(s *Split) { s.Date = "06/01/2024" }, `date "06/01/2024"`},
		"other season":    {func(s *Split) { s.Season = "2023" }, "season 2023"},
		"other player":    {func(s *Split) { s.Player.ID = 8 }, "player 8"},
		"no name":         {func(s *Split) { s.Player.FullName = " " }, "fullName is missing"},
		"unknown team id": {func(s *Split) { s.Team = Club{ID: 4242, Name: "Nowhere Nine"} }, `team: unknown team id 4242 ("Nowhere Nine")`},
	} {
		t.Run(name, func(t *testing.T) {
			s := base()
			tc.change(&s)
			_, err := Rows(7, 2024, "R", []Split{s})
			if err == nil {
				t.Fatal("no error")
			}
			mustContain(t, err.Error(), "player 7, season 2024, split 0 (game ", tc.want)
		})
	}
}

func TestUnknownTeamIDIsAClearError(t *testing.T) {
	api := newFakeStatsAPI(t)
	var stderr bytes.Buffer
	out := filepath.Join(t.TempDir(), "out.csv")
	cmd := &Command{Players: []int64{playerUnknownTeam}, Season: 2024, BaseURL: api.URL, Timeout: 5 * time.Second, Out: out}
	err := cmd.Run(context.Background(), io.Discard, &stderr)
	var unknown *UnknownTeamError
	if !errors.As(err, &unknown) || unknown.ID != 999 {
		t.Fatalf("error = %v, want an UnknownTeamError for id 999", err)
	}
	mustContain(t, err.Error(), "player 592450", "season 2024", "game 745301", `opponent: unknown team id 999 ("Springfield Isotopes")`)
	if _, statErr := os.Stat(out); !errors.Is(statErr, os.ErrNotExist) {
		t.Errorf("a failed run left %s (stat: %v)", out, statErr)
	}
}

func TestClubAbbreviations(t *testing.T) {
	if n := len(clubAbbreviations); n != 30 {
		t.Errorf("%d clubs, want 30", n)
	}
	seen := map[string]int{}
	for id, a := range clubAbbreviations {
		if other, dup := seen[a]; dup {
			t.Errorf("ids %d and %d are both %s", id, other, a)
		}
		seen[a] = id
	}
	for _, tc := range []struct {
		id, season int
		want       string
	}{
		{119, 2024, "LAD"}, {135, 2024, "SD"}, {137, 2024, "SF"}, {147, 2024, "NYY"}, {109, 2024, "AZ"},
		{133, 2024, "OAK"}, {133, 2025, "ATH"}, {146, 2011, "FLA"}, {146, 2012, "MIA"}, {120, 2004, "MON"}, {120, 2005, "WSH"},
	} {
		if got, ok := ClubAbbreviation(tc.id, tc.season); !ok || got != tc.want {
			t.Errorf("ClubAbbreviation(%d, %d) = %q, %v; want %q", tc.id, tc.season, got, ok, tc.want)
		}
	}
	if _, ok := ClubAbbreviation(999, 2024); ok {
		t.Error("id 999 is known")
	}
}

func TestCommandWritesTheGoldenCSV(t *testing.T) {
	api := newFakeStatsAPI(t)
	out := filepath.Join(t.TempDir(), "season.csv")
	var stderr bytes.Buffer
	cmd := &Command{Players: []int64{playerPostponed, playerNormal, playerDoubleheader, playerNormal}, Season: 2024,
		BaseURL: api.URL, Timeout: 5 * time.Second, Out: out}
	if err := cmd.Run(context.Background(), io.Discard, &stderr); err != nil {
		t.Fatal(err)
	}
	if n := api.requestCount(); n != 3 {
		t.Errorf("%d requests for 3 distinct players", n)
	}
	mustContain(t, stderr.String(), "wrote 14 rows, season 2024, to "+out)
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(out); err != nil || info.Mode().Perm() != 0o644 {
		t.Errorf("mode of %s: %v, %v; want 0644", out, info.Mode(), err)
	}
	golden := filepath.Join("testdata", "golden-2024.csv")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestCommandWritesTheGoldenCSV -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("CSV differs from %s:\n%s", golden, got)
	}

	rows := readRows(t, bytes.NewReader(got))
	if len(rows) != 14 {
		t.Fatalf("%d rows read back, want 14", len(rows))
	}
	var ohtani []gamelog.Row
	for i, r := range rows {
		if i > 0 && (rows[i-1].GameDate > r.GameDate || rows[i-1].GameDate == r.GameDate && rows[i-1].GameNumber > r.GameNumber) {
			t.Errorf("row %d (%s #%d) is after row %d (%s #%d)", i, r.GameDate, r.GameNumber, i-1, rows[i-1].GameDate, rows[i-1].GameNumber)
		}
		if r.PlayerID == playerNormal {
			ohtani = append(ohtani, r)
		}
	}
	if !reflect.DeepEqual(ohtani, wantNormal) {
		t.Errorf("read back:\n%+v\nwant:\n%+v", ohtani, wantNormal)
	}
	assertValidEvents(t, rows)

	// The same extraction, one player at a time, gives the same rows.
	var perPlayer []gamelog.Row
	for _, id := range []int64{playerNormal, playerDoubleheader, playerPostponed} {
		perPlayer = append(perPlayer, extractRows(t, api, id)...)
	}
	SortRows(perPlayer)
	if !reflect.DeepEqual(rows, perPlayer) {
		t.Errorf("CSV rows differ from the rows extracted per player")
	}
}

func TestPlayerWithoutGamesWritesOnlyTheHeader(t *testing.T) {
	api := newFakeStatsAPI(t)
	for _, id := range []int64{playerNoStats, playerNoSplits} {
		var stdout, stderr bytes.Buffer
		cmd := &Command{Players: []int64{id}, Season: 2024, BaseURL: api.URL, Timeout: 5 * time.Second, Out: "-"}
		if err := cmd.Run(context.Background(), &stdout, &stderr); err != nil {
			t.Fatalf("player %d: %v", id, err)
		}
		if want := strings.Join(gamelog.Header, ",") + "\n"; stdout.String() != want {
			t.Errorf("player %d: stdout = %q, want the header only", id, stdout.String())
		}
		mustContain(t, stderr.String(), "player "+strconv.FormatInt(id, 10)+" has no regular-season games in 2024", "wrote 0 rows")
	}
}

func TestRetriesServerErrorsAndNetworkErrors(t *testing.T) {
	api := newFakeStatsAPI(t)
	// The dropped connection comes first: on a reused connection net/http would retry the
	// GET itself, and the client's own retry would go untested.
	api.answerFirst(playerNormal,
		dropConnection,
		status(http.StatusInternalServerError, `{"message":"Internal error"}`),
		status(http.StatusBadGateway, "<html>bad gateway</html>"),
	)
	var notes []string
	c := fastClient(t, api.URL, WithRetryNotify(func(err error, wait time.Duration) { notes = append(notes, err.Error()) }))
	splits, err := c.GameLog(context.Background(), playerNormal, 2024, "R")
	if err != nil {
		t.Fatal(err)
	}
	if len(splits) != 6 || api.requestCount() != 4 {
		t.Errorf("%d splits after %d requests, want 6 after 4", len(splits), api.requestCount())
	}
	if len(notes) != 3 {
		t.Fatalf("retry notes = %q", notes)
	}
	mustContain(t, notes[0], "player 660271, season 2024", "EOF")
	mustContain(t, notes[1], "player 660271, season 2024", "HTTP 500", "Internal error")
	mustContain(t, notes[2], "HTTP 502")
}

func TestHonoursRetryAfter(t *testing.T) {
	api := newFakeStatsAPI(t)
	api.answerFirst(playerNormal, status(http.StatusTooManyRequests, "slow down", "Retry-After", "1"))
	start := time.Now()
	if _, err := fastClient(t, api.URL).GameLog(context.Background(), playerNormal, 2024, "R"); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("answered after %s, before the server's Retry-After of 1s", waited)
	}
	if api.requestCount() != 2 {
		t.Errorf("%d requests, want 2", api.requestCount())
	}
}

func TestRetryAfterPastTheRetryBudgetGivesUpAtOnce(t *testing.T) {
	api := newFakeStatsAPI(t)
	api.answerFirst(playerNormal, status(http.StatusServiceUnavailable, "maintenance", "Retry-After", "3600"))
	start := time.Now()
	_, err := fastClient(t, api.URL).GameLog(context.Background(), playerNormal, 2024, "R")
	if err == nil {
		t.Fatal("no error")
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("waited %s", time.Since(start))
	}
	mustContain(t, err.Error(), "player 660271, season 2024", "HTTP 503", "Retry-After 1h0m0s", "maintenance")
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	api := newFakeStatsAPI(t)
	for range 10 {
		api.answerFirst(playerNormal, status(http.StatusServiceUnavailable, "down"))
	}
	_, err := fastClient(t, api.URL, WithMaxAttempts(3)).GameLog(context.Background(), playerNormal, 2024, "R")
	if err == nil {
		t.Fatal("no error")
	}
	mustContain(t, err.Error(), "player 660271, season 2024", "gave up after 3 attempts", "HTTP 503")
	var statusErr *StatusError
	if !errors.As(err, &statusErr) || statusErr.StatusCode != 503 {
		t.Errorf("error %v is not a StatusError 503", err)
	}
	if api.requestCount() != 3 {
		t.Errorf("%d requests, want 3", api.requestCount())
	}
}

func TestClientErrorsAreNotRetried(t *testing.T) {
	api := newFakeStatsAPI(t)
	_, err := fastClient(t, api.URL).GameLog(context.Background(), 123, 2024, "R")
	if err == nil {
		t.Fatal("no error")
	}
	mustContain(t, err.Error(), "player 123, season 2024", "HTTP 404", "Object not found")
	if api.requestCount() != 1 {
		t.Errorf("%d requests for a 404, want 1", api.requestCount())
	}
}

func TestMalformedBodyIsAClearError(t *testing.T) {
	for name, tc := range map[string]struct {
		body string
		want string
	}{
		"html":            {"<html><body>Service temporarily unavailable</body></html>", "the response is not JSON"},
		"truncated json":  {`{"stats": [{"type": {"displayName": "gameLog"}`, "the response is not JSON"},
		"wrong shape":     {`{"stats": {"splits": 3}}`, "the response is not a game log"},
		"no stats member": {`{"copyright": "x", "people": []}`, `it has no "stats" list`},
		"not an object":   {`[1, 2, 3]`, "the response is not a game log"},
		"other stats":     {`{"stats": [{"type": {"displayName": "season"}, "group": {"displayName": "pitching"}, "splits": []}]}`, `type "season", group "pitching"`},
		"wrong count":     {`{"stats": [{"type": {"displayName": "gameLog"}, "group": {"displayName": "hitting"}, "splits": [{"stat": {"hits": "two"}}]}]}`, "the response is not a game log"},
	} {
		t.Run(name, func(t *testing.T) {
			api := newFakeStatsAPI(t)
			api.answerFirst(playerNormal, status(http.StatusOK, tc.body, "Content-Type", "application/json"))
			_, err := fastClient(t, api.URL).GameLog(context.Background(), playerNormal, 2024, "R")
			if err == nil {
				t.Fatal("no error")
			}
			mustContain(t, err.Error(), "player 660271, season 2024", tc.want)
			if api.requestCount() != 1 {
				t.Errorf("%d requests for a malformed body, want 1", api.requestCount())
			}
		})
	}
}

func TestFailedRunLeavesTheOldFileAndNoTemporaryFile(t *testing.T) {
	api := newFakeStatsAPI(t)
	api.answerFirst(playerDoubleheader, status(http.StatusOK, "<html>oops</html>"))
	dir := t.TempDir()
	out := filepath.Join(dir, "season.csv")
	if err := os.WriteFile(out, []byte("previous run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := &Command{Players: []int64{playerNormal, playerDoubleheader}, Season: 2024, BaseURL: api.URL, Timeout: 5 * time.Second, Out: out}
	err := cmd.Run(context.Background(), io.Discard, io.Discard)
	if err == nil {
		t.Fatal("no error")
	}
	mustContain(t, err.Error(), "player 605141, season 2024", "not JSON")
	if b, _ := os.ReadFile(out); string(b) != "previous run\n" {
		t.Errorf("%s = %q after a failed run", out, b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %v", entries)
	}

	// A write that fails midway leaves no file either.
	err = writeFileAtomically(filepath.Join(dir, "half.csv"), func(w io.Writer) error {
		if _, err := io.WriteString(w, "season,game_date\n2024,"); err != nil {
			return err
		}
		return errors.New("disk on fire")
	})
	mustContain(t, errString(err), "disk on fire")
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %v after a failed write", entries)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 4, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		"0":                             0,
		"-3":                            0,
		"soon":                          0,
		"Mon, 01 Apr 2024 12:00:30 GMT": 30 * time.Second,
		"Mon, 01 Apr 2024 11:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestCommandFlags(t *testing.T) {
	t.Setenv("BOXSCORE_MLB_API_URL", "http://stats.example")
	t.Setenv("BOXSCORE_GATEWAY_URL", "") // restored at the end of the test
	if err := os.Unsetenv("BOXSCORE_GATEWAY_URL"); err != nil {
		t.Fatal(err)
	}
	var cli struct {
		Extract Command `cmd:""`
	}
	parser, err := kong.New(&cli, kong.Exit(func(int) { t.Fatal("kong exited") }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.Parse([]string{"extract", "--player", "660271,605141", "--player=518692", "--season", "2024"}); err != nil {
		t.Fatal(err)
	}
	got := cli.Extract
	if !reflect.DeepEqual(got.Players, []int64{660271, 605141, 518692}) || got.Season != 2024 ||
		got.BaseURL != "http://stats.example" || got.Out != "-" || got.Post || got.Gateway != "http://127.0.0.1:8080" ||
		got.Timeout != 30*time.Second {
		t.Errorf("parsed %+v", got)
	}

	for name, args := range map[string][]string{
		"no player":      {"extract", "--season", "2024"},
		"no season":      {"extract", "--player", "1"},
		"bad season":     {"extract", "--player", "1", "--season", "24"},
		"bad player":     {"extract", "--player", "-5", "--season", "2024"},
		"post and out":   {"extract", "--player", "1", "--season", "2024", "--post", "--out", "x.csv"},
		"zero timeout":   {"extract", "--player", "1", "--season", "2024", "--timeout", "0s"},
		"non-numeric id": {"extract", "--player", "ohtani", "--season", "2024"},
	} {
		cli.Extract = Command{}
		if _, err := parser.Parse(args); err == nil {
			t.Errorf("%s: %q parsed", name, args)
		}
	}
}

func TestBadBaseURL(t *testing.T) {
	cmd := &Command{Players: []int64{1}, Season: 2024, BaseURL: "statsapi.mlb.com", Timeout: time.Second, Out: "-"}
	err := cmd.Run(context.Background(), io.Discard, io.Discard)
	mustContain(t, errString(err), `base URL "statsapi.mlb.com" is not an http(s) URL`)
}
