package replay_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/gamelog"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/ingestclient"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/ingestclient/gatewaytest"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/replay"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	"github.com/boxscore-dev/boxscore/pkg/s3local"
	"github.com/boxscore-dev/boxscore/pkg/testutil/s3test"
)

const demoCSV = "../../../../k8s/local/demo/dodgers-2024-mar-jun.csv"

// demoLines returns the header and the data lines of the demo season.
func demoLines(t *testing.T) (string, []string) {
	t.Helper()
	data, err := os.ReadFile(demoCSV)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return lines[0], lines[1:]
}

func writeCSV(t *testing.T, header string, lines []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "season.csv")
	if err := os.WriteFile(path, []byte(header+"\n"+strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// rowsOf reads the rows of a game-log file, failing on any malformed row.
func rowsOf(t *testing.T, path string) []gamelog.Row {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := gamelog.NewReader(f)
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
			t.Fatal(err)
		}
		rows = append(rows, row)
	}
}

func eventIDs(evs []*statsv1.StatEvent) []string {
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.GetEventId()
	}
	return ids
}

// run replays with test defaults (no progress, a short retry budget) after edit.
func run(t *testing.T, source, gateway string, edit func(*replay.Command)) (stdout, stderr string, err error) {
	t.Helper()
	cmd := &replay.Command{Source: source, Gateway: gateway, BatchSize: 500, Progress: "none", RetryBudget: 10 * time.Second}
	// Never the checkout's own .run/api-key, nor the environment's key.
	cmd.Dir = t.TempDir()
	if edit != nil {
		edit(cmd)
	}
	var out, errOut bytes.Buffer
	err = cmd.Run(context.Background(), &out, &errOut)
	return out.String(), errOut.String(), err
}

// summaryValue returns the number after "label:" in the summary.
func summaryValue(t *testing.T, summary, label string) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(label) + `:\s+(\d+)`).FindStringSubmatch(summary)
	if m == nil {
		t.Fatalf("summary has no %q line:\n%s", label, summary)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		t.Fatalf("summary line %q: %v", label, err)
	}
	return n
}

// checkDayOrder asserts that no request mixes days and the days come in ascending order.
func checkDayOrder(t *testing.T, reqs []gatewaytest.Request) {
	t.Helper()
	last := ""
	for i, r := range reqs {
		if r.Status != http.StatusAccepted {
			continue
		}
		date := r.Events[0].GetGame().GetDate()
		for _, ev := range r.Events {
			if ev.GetGame().GetDate() != date {
				t.Fatalf("request %d mixes %s and %s", i, date, ev.GetGame().GetDate())
			}
		}
		if date < last {
			t.Fatalf("request %d is for %s, after %s", i, date, last)
		}
		last = date
	}
}

func TestReplaysTheDemoSeasonFromS3(t *testing.T) {
	s3test.NoCredentialsInEnv(t)
	store, err := s3local.Start(context.Background(), "127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	put := &s3local.PutCommand{File: demoCSV, Destination: "s3://seasons/2024/dodgers.csv", Endpoint: store.URL(), Region: "us-east-1"}
	if err := put.Run(context.Background(), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	want := rowsOf(t, demoCSV) // the demo file is in date order already
	wantIDs := make([]string, len(want))
	for i, r := range want {
		wantIDs[i] = r.Event(replay.EventSource).GetEventId()
	}

	var runs [][]string
	for range 2 {
		gw := gatewaytest.Start(t)
		stdout, _, err := run(t, "s3://seasons/2024/dodgers.csv", gw.URL, func(c *replay.Command) { c.S3Endpoint = store.URL() })
		if err != nil {
			t.Fatalf("replay: %v\n%s", err, stdout)
		}
		got := gw.Accepted()
		if len(got) != 235 {
			t.Fatalf("the gateway accepted %d events, want all 235 rows", len(got))
		}
		checkDayOrder(t, gw.Requests())
		if !slices.Equal(eventIDs(got), wantIDs) {
			t.Fatal("the event ids are not Row.Event's deterministic ids, in file order")
		}
		for _, ev := range got {
			if ev.GetSource() != replay.EventSource {
				t.Fatalf("source = %q", ev.GetSource())
			}
		}
		if n := len(gw.Requests()); n != 84 {
			t.Errorf("%d requests, want one per day (84)", n)
		}
		for label, n := range map[string]int{"rows read": 235, "malformed rows": 0, "sent": 235, "accepted": 235, "rejected": 0} {
			if got := summaryValue(t, stdout, label); got != n {
				t.Errorf("summary %s = %d, want %d\n%s", label, got, n, stdout)
			}
		}
		if !strings.Contains(stdout, "84 (2024-03-20 to 2024-06-30)") {
			t.Errorf("summary does not give the days and their range:\n%s", stdout)
		}
		runs = append(runs, eventIDs(got))
	}
	if !slices.Equal(runs[0], runs[1]) {
		t.Fatal("two replays of one file sent different ids")
	}
}

func TestDaysGoInDateOrderAndWithinADayInFileOrder(t *testing.T) {
	header, lines := demoLines(t)
	lines = lines[:40]
	slices.Reverse(lines) // the file runs backwards in time, and each day's rows too
	path := writeCSV(t, header, lines)
	rows := rowsOf(t, path)
	slices.SortStableFunc(rows, func(a, b gamelog.Row) int { return strings.Compare(a.GameDate, b.GameDate) })
	var want []string
	for _, r := range rows {
		want = append(want, r.Event(replay.EventSource).GetEventId())
	}

	gw := gatewaytest.Start(t)
	if _, _, err := run(t, path, gw.URL, func(c *replay.Command) { c.BatchSize = 2 }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(eventIDs(gw.Accepted()), want) {
		t.Fatal("events not in date order, file order within a day")
	}
	for _, r := range gw.Requests() {
		if len(r.Events) > 2 {
			t.Fatalf("a request of %d events with --batch-size 2", len(r.Events))
		}
	}
	checkDayOrder(t, gw.Requests())
}

func TestMalformedRowsAreReportedAndTheValidRowsSent(t *testing.T) {
	header, lines := demoLines(t)
	lines = slices.Clone(lines[:6])
	lines[1] = strings.Replace(lines[1], ",away,", ",sideways,", 1)                                       // line 3
	lines[4] = strings.Join(strings.Split(lines[4], ",")[:10], ",")                                       // line 6: too short
	lines = append(lines, "2024,2024-13-01,X,0,1,Nobody,LAD,SD,home,1,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0") // line 8
	path := writeCSV(t, header, lines)

	gw := gatewaytest.Start(t)
	stdout, stderr, err := run(t, path, gw.URL, nil)
	if err != nil {
		t.Fatalf("malformed rows made the replay fail: %v", err)
	}
	if n := len(gw.Accepted()); n != 4 {
		t.Fatalf("%d events accepted, want the 4 valid rows", n)
	}
	for _, want := range []string{"line 3, column home_away", "line 6, column ", "line 8, column game_date"} {
		if !strings.Contains(stderr, want) || !strings.Contains(stdout, want) {
			t.Errorf("%q not reported on stderr and in the summary\nstderr:\n%s\nstdout:\n%s", want, stderr, stdout)
		}
	}
	if summaryValue(t, stdout, "malformed rows") != 3 || summaryValue(t, stdout, "rows read") != 7 || summaryValue(t, stdout, "accepted") != 4 {
		t.Errorf("summary:\n%s", stdout)
	}
}

func TestBusyGatewayIsRetriedAfterRetryAfter(t *testing.T) {
	t.Parallel()
	header, lines := demoLines(t)
	path := writeCSV(t, header, lines[:6])
	gw := gatewaytest.Start(t)
	gw.FailNext(gatewaytest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "1"}, gatewaytest.Fault{Status: http.StatusServiceUnavailable, RetryAfter: "1"})
	stdout, stderr, err := run(t, path, gw.URL, func(c *replay.Command) { c.Progress = "log" })
	if err != nil {
		t.Fatal(err)
	}
	reqs := gw.Requests()
	if len(gw.Accepted()) != 6 || reqs[0].Status != 429 || reqs[1].Status != 503 {
		t.Fatalf("accepted %d; requests %+v", len(gw.Accepted()), reqs)
	}
	for i := 1; i <= 2; i++ {
		if gap := reqs[i].At.Sub(reqs[i-1].At); gap < time.Second {
			t.Errorf("request %d came %s after a Retry-After of 1 s", i, gap)
		}
	}
	if strings.Count(stderr, "retrying in 1s") != 2 {
		t.Errorf("stderr does not report both retries:\n%s", stderr)
	}
	if summaryValue(t, stdout, "accepted") != 6 {
		t.Errorf("summary:\n%s", stdout)
	}
}

func TestAnInvalidEventIsRejectedAndTheOthersAccepted(t *testing.T) {
	header, lines := demoLines(t)
	lines = slices.Clone(lines[:12])
	lines[4] = strings.Replace(lines[4], "2024,", "2023,", 1) // season 2023 for a 2024 game
	path := writeCSV(t, header, lines)
	rejected := rowsOf(t, path)[4]

	gw := gatewaytest.Start(t)
	stdout, stderr, err := run(t, path, gw.URL, nil)
	if err != nil {
		t.Fatalf("a rejection made the replay fail: %v", err)
	}
	if n := len(gw.Accepted()); n != 11 {
		t.Fatalf("%d accepted, want the 11 others", n)
	}
	if summaryValue(t, stdout, "rejected") != 1 || summaryValue(t, stdout, "accepted") != 11 || summaryValue(t, stdout, "sent") != 12 {
		t.Errorf("summary:\n%s", stdout)
	}
	id := rejected.Event(replay.EventSource).GetEventId()
	if !regexp.MustCompile(`game\.season season_mismatch: 1\n\s+` + id + ` \(` + rejected.PlayerName).MatchString(stdout) {
		t.Errorf("the summary does not group the rejection by reason with its event id %s:\n%s", id, stdout)
	}
	if !strings.Contains(stderr, "replay: rejected "+id+" ("+rejected.PlayerName) || !strings.Contains(stderr, "season_mismatch") {
		t.Errorf("stderr does not report the rejected event:\n%s", stderr)
	}
}

func TestFromDateSkipsEarlierDays(t *testing.T) {
	gw := gatewaytest.Start(t)
	stdout, _, err := run(t, demoCSV, gw.URL, func(c *replay.Command) { c.FromDate = "2024-06-01" })
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, r := range rowsOf(t, demoCSV) {
		if r.GameDate >= "2024-06-01" {
			want++
		}
	}
	got := gw.Accepted()
	if len(got) != want || want == 0 || want == 235 {
		t.Fatalf("%d events sent, want the %d of June", len(got), want)
	}
	for _, ev := range got {
		if ev.GetGame().GetDate() < "2024-06-01" {
			t.Fatalf("sent an event of %s", ev.GetGame().GetDate())
		}
	}
	if !strings.Contains(stdout, fmt.Sprintf("skipped before --from-date 2024-06-01 (%d rows)", 235-want)) {
		t.Errorf("summary does not count the skipped rows:\n%s", stdout)
	}
}

func TestLogProgressWhenNotATerminal(t *testing.T) {
	gw := gatewaytest.Start(t)
	_, stderr, err := run(t, demoCSV, gw.URL, func(c *replay.Command) { c.Progress = "auto" })
	if err != nil {
		t.Fatal(err)
	}
	lines := regexp.MustCompile(`(?m)^replay: day (\d+)/84 \(2024-\d\d-\d\d\): \d+/235 events sent, \d+ accepted, 0 rejected, [\d.]+ events/s$`).FindAllStringSubmatch(stderr, -1)
	if len(lines) < 10 || len(lines) > 12 {
		t.Fatalf("%d progress lines, want one per tenth of the days:\n%s", len(lines), stderr)
	}
	if last := lines[len(lines)-1][1]; last != "84" {
		t.Errorf("last progress line at day %s, want 84", last)
	}
	if strings.Contains(stderr, "\r") {
		t.Error("a bar was drawn on a stream that is not a terminal")
	}
}

func TestBarProgress(t *testing.T) {
	gw := gatewaytest.Start(t)
	_, stderr, err := run(t, demoCSV, gw.URL, func(c *replay.Command) { c.Progress = "bar" })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "day 84/84 2024-06-30") || !strings.Contains(stderr, "(235/235") || !strings.Contains(stderr, "events/s") {
		t.Fatalf("the bar does not show days, events and events/s:\n%q", stderr)
	}
}

func TestPacingStartsDaysAtTheGivenRate(t *testing.T) {
	header, lines := demoLines(t)
	path := writeCSV(t, header, lines[:11]) // the first 5 days
	gw := gatewaytest.Start(t)
	if _, _, err := run(t, path, gw.URL, func(c *replay.Command) { c.DaysPerSecond = 20 }); err != nil {
		t.Fatal(err)
	}
	var starts []time.Time
	last := ""
	for _, r := range gw.Requests() {
		if d := r.Events[0].GetGame().GetDate(); d != last {
			starts, last = append(starts, r.At), d
		}
	}
	if len(starts) != 5 {
		t.Fatalf("%d days, want 5", len(starts))
	}
	// Day k starts no earlier than k ticks of 50 ms after day 0 (less a little for the
	// first request's own latency).
	if span := starts[4].Sub(starts[0]); span < 4*50*time.Millisecond-20*time.Millisecond {
		t.Fatalf("5 days at 20 days/s took %s, want at least about 200 ms", span)
	}
}

func TestFatalErrors(t *testing.T) {
	header, lines := demoLines(t)
	path := writeCSV(t, header, lines[:6])

	t.Run("source missing", func(t *testing.T) {
		gw := gatewaytest.Start(t)
		_, _, err := run(t, filepath.Join(t.TempDir(), "none.csv"), gw.URL, nil)
		if err == nil || len(gw.Requests()) != 0 {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("not a game log", func(t *testing.T) {
		gw := gatewaytest.Start(t)
		_, _, err := run(t, writeCSV(t, "a,b", []string{"1,2"}), gw.URL, nil)
		if err == nil || !strings.Contains(err.Error(), "missing column") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("gateway unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		stdout, _, err := run(t, path, srv.URL, func(c *replay.Command) { c.RetryBudget = 200 * time.Millisecond })
		if !errors.Is(err, ingestclient.ErrRetryBudgetExhausted) {
			t.Fatalf("err = %v, want the retry budget exhausted", err)
		}
		if !strings.Contains(stdout, "resume with --from-date 2024-03-20") || summaryValue(t, stdout, "accepted") != 0 {
			t.Errorf("summary does not say where to resume:\n%s", stdout)
		}
	})
	t.Run("gateway refuses for good", func(t *testing.T) {
		gw := gatewaytest.Start(t)
		gw.FailNext(gatewaytest.Fault{Status: http.StatusUnsupportedMediaType})
		_, _, err := run(t, path, gw.URL, nil)
		var pe *ingestclient.ProblemError
		if !errors.As(err, &pe) || pe.StatusCode != http.StatusUnsupportedMediaType || len(gw.Requests()) != 1 {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("s3 object missing", func(t *testing.T) {
		s3test.NoCredentialsInEnv(t)
		store, err := s3local.Start(context.Background(), "127.0.0.1:0", "")
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		_, _, err = run(t, "s3://seasons/none.csv", "http://127.0.0.1:1", func(c *replay.Command) { c.S3Endpoint = store.URL() })
		if err == nil || !strings.Contains(err.Error(), "s3://seasons/none.csv") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestKongFlagsAndEnvironment(t *testing.T) {
	var cli struct {
		Replay replay.Command `cmd:""`
	}
	parser, err := kong.New(&cli, kong.Exit(func(int) { t.Fatal("kong exited") }))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("BOXSCORE_GATEWAY_URL", "http://127.0.0.1:18080")
	t.Setenv("BOXSCORE_S3_ENDPOINT", "http://127.0.0.1:4569")
	if _, err := parser.Parse([]string{"replay", "s3://seasons/x.csv", "--days-per-second", "2.5", "--batch-size", "100", "--from-date", "2024-04-01", "--progress", "log"}); err != nil {
		t.Fatal(err)
	}
	c := cli.Replay
	if c.Source != "s3://seasons/x.csv" || c.Gateway != "http://127.0.0.1:18080" || c.S3Endpoint != "http://127.0.0.1:4569" ||
		c.DaysPerSecond != 2.5 || c.BatchSize != 100 || c.FromDate != "2024-04-01" || c.Progress != "log" || c.RetryBudget != time.Minute {
		t.Fatalf("parsed %+v", c)
	}
	for _, bad := range [][]string{
		{"replay", "x.csv", "--batch-size", "501"},
		{"replay", "x.csv", "--progress", "fancy"},
		{"replay", "x.csv", "--from-date", "2024-02-30"},
		{"replay", "x.csv", "--days-per-second", "-1"},
	} {
		if _, err := parser.Parse(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// The replay sends the local key file's key when no key is given, and a gateway refusing
// the credential stops it at the first request, saying what to check.
func TestTheKeyIsSentAndARefusalStopsTheReplay(t *testing.T) {
	header, lines := demoLines(t)
	source := writeCSV(t, header, lines[:20])
	gw := gatewaytest.Start(t)
	gw.RequireKeys(map[string][]string{"bsk_local": {"ingest"}})

	_, _, err := run(t, source, gw.URL, nil)
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "no API key was sent") {
		t.Fatalf("without a key: err = %v, want a 401 saying no key was sent", err)
	}
	if n := len(gw.Requests()); n != 1 {
		t.Fatalf("without a key: %d requests, want 1 (a refusal is not retried, the next days not sent)", n)
	}

	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, ".run"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".run", "api-key"), []byte("bsk_local\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, _, err := run(t, source, gw.URL, func(c *replay.Command) { c.Dir = dir })
	if err != nil {
		t.Fatal(err)
	}
	if got := len(gw.Accepted()); got != 20 {
		t.Fatalf("%d events accepted, want 20; summary:\n%s", got, stdout)
	}
	for _, r := range gw.Requests()[1:] {
		if r.Authorization != "Bearer bsk_local" {
			t.Fatalf("a request carried Authorization %q", r.Authorization)
		}
	}
	if strings.Contains(stdout, "bsk_local") {
		t.Errorf("the summary shows the key:\n%s", stdout)
	}
}
