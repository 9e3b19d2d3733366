// Package league runs a generated league month through the whole pipeline: `boxscore season
// generate` (fixed seed) writes the CSV, `boxscore replay` sends it to the ingest gateway,
// the services stream, transform and load it, and `boxscore report` prints the league
// leaderboard. What lands must be what the generator simulated, corrections included, and
// the leaderboard must be what this test computes from the CSV on its own (encoding/csv,
// no code of the report or the generator).
package league

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/test/stack"
)

const (
	seed = "11"
	from = "2024-05-01"
	to   = "2024-05-31"
)

// counts are the counting columns, as the CSV and the warehouse name them.
var counts = []string{"plate_appearances", "at_bats", "runs", "hits", "doubles", "triples", "home_runs", "rbi",
	"base_on_balls", "intentional_walks", "strike_outs", "hit_by_pitch", "sac_bunts", "sac_flies",
	"stolen_bases", "caught_stealing", "ground_into_double_play"}

// line is one (player, game) line of the CSV, its latest version.
type line struct {
	player               int64
	name, team, gameDate string
	gameNumber           int
	version              int64
	stat                 map[string]int
}

// readCSV reads the generated file: the latest version of each (player, game), how many
// rows it has and how many of them are corrections (version above 1).
func readCSV(t *testing.T, path string) (lines map[string]line, rows, corrections int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	records, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, name := range records[0] {
		col[name] = i
	}
	atoi := func(r []string, name string) int64 {
		n, err := strconv.ParseInt(r[col[name]], 10, 64)
		if err != nil {
			t.Fatalf("column %s: %v", name, err)
		}
		return n
	}
	lines = map[string]line{}
	for _, r := range records[1:] {
		l := line{player: atoi(r, "player_id"), name: r[col["player_name"]], team: r[col["team"]],
			gameDate: r[col["game_date"]], gameNumber: int(atoi(r, "game_number")), version: atoi(r, "version"), stat: map[string]int{}}
		for _, c := range counts {
			l.stat[c] = int(atoi(r, c))
		}
		if l.version > 1 {
			corrections++
		}
		key := fmt.Sprintf("%d/%s", l.player, r[col["game_id"]])
		if old, ok := lines[key]; !ok || l.version > old.version {
			lines[key] = l
		}
	}
	return lines, len(records) - 1, corrections
}

// summary is what `season generate` says on stderr of the league it simulated, counted
// play by play during the simulation.
type summary struct {
	lines, corrections, runs, homeRuns int
	avg, obp, slg                      string
}

var (
	summaryLines       = regexp.MustCompile(`(?m)^\s+lines:\s+(\d+)$`)
	summaryCorrections = regexp.MustCompile(`(?m)^\s+corrections:\s+(\d+) `)
	summaryLeague      = regexp.MustCompile(`(?m)^\s+league:\s+(\.\d{3})/(\.\d{3})/(\.\d{3}), (\d+) runs, (\d+) home runs$`)
)

func parseSummary(t *testing.T, stderr string) summary {
	t.Helper()
	l, c, g := summaryLines.FindStringSubmatch(stderr), summaryCorrections.FindStringSubmatch(stderr), summaryLeague.FindStringSubmatch(stderr)
	if l == nil || c == nil || g == nil {
		t.Fatalf("season generate's summary lacks lines, corrections or the league line:\n%s", stderr)
	}
	n := func(s string) int {
		v, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return summary{lines: n(l[1]), corrections: n(c[1]), runs: n(g[4]), homeRuns: n(g[5]), avg: g[1], obp: g[2], slg: g[3]}
}

// rate writes num/den to three decimals as the summary does (".250").
func rate(num, den int) string {
	return strings.TrimPrefix(strconv.FormatFloat(float64(num)/float64(den), 'f', 3, 64), "0")
}

func TestLeagueMonthThroughThePipeline(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	p := stack.NewPipeline(t, stack.PipelineConfig{Config: stack.Config{DatabaseURL: dbURL}, Shards: 4})
	p.StartAll()

	csvPath := filepath.Join(t.TempDir(), "may.csv")
	gen := exec.Command(p.CLIPath(), "season", "generate", "--seed", seed, "--season", "2024", "--from", from, "--to", to, "--out", csvPath)
	var genErr bytes.Buffer
	gen.Stderr = &genErr
	if err := gen.Run(); err != nil {
		t.Fatalf("season generate: %v\n%s", err, genErr.String())
	}
	sum := parseSummary(t, genErr.String())
	lines, rows, corrections := readCSV(t, csvPath)
	if corrections == 0 || corrections != sum.corrections {
		t.Fatalf("the CSV has %d corrections, the generator says %d: want the same, and some", corrections, sum.corrections)
	}
	if len(lines) != sum.lines || rows != len(lines)+corrections {
		t.Fatalf("the CSV has %d lines in %d rows, the generator says %d lines and %d corrections", len(lines), rows, sum.lines, corrections)
	}

	started := time.Now()
	replay := exec.Command(p.CLIPath(), "replay", csvPath, "--gateway", p.GatewayURL(), "--progress", "none")
	if out, err := replay.CombinedOutput(); err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	// Every line, each at its latest version: a correction replaces its line.
	var versions int64
	for _, l := range lines {
		versions += l.version
	}
	p.WaitFor(5*time.Minute, fmt.Sprintf("%d lines at their latest version", len(lines)), func() bool {
		var n, v int64
		err := p.DB.QueryRow(context.Background(), "SELECT count(*), COALESCE(SUM(version), 0) FROM boxscore.fact_batting_game").Scan(&n, &v)
		return err == nil && n == int64(len(lines)) && v == versions
	})
	t.Logf("%d rows (%d corrections) replayed and loaded in %s", rows, corrections, time.Since(started).Round(time.Millisecond))
	if dead := p.Count("SELECT count(*) FROM boxscore.dead_letter"); dead != 0 {
		t.Fatalf("%d dead letters for a valid month", dead)
	}

	t.Run("totals", func(t *testing.T) { assertTotals(t, p, lines, sum) })
	for _, tc := range []struct {
		sort, team, from, to string
		limit                int
	}{
		{sort: "ops"},
		{sort: "avg", limit: 20},
		{sort: "hr", limit: 30},
		{sort: "ops", team: "NYY", from: "2024-05-10", to: "2024-05-24"},
	} {
		t.Run(fmt.Sprintf("leaderboard %s %s %s..%s", tc.sort, tc.team, tc.from, tc.to), func(t *testing.T) {
			args := []string{"report", "--database-url", dbURL, "--season", "2024", "--sort", tc.sort,
				"--limit", strconv.Itoa(tc.limit), "--chart", filepath.Join(t.TempDir(), "ops.svg")}
			if tc.team != "" {
				args = append(args, "--team", tc.team)
			}
			if tc.from != "" {
				args = append(args, "--from", tc.from, "--to", tc.to)
			}
			out, err := exec.Command(p.CLIPath(), args...).CombinedOutput()
			if err != nil {
				t.Fatalf("report: %v\n%s", err, out)
			}
			got := reportedPlayers(t, string(out))
			want := expectedBoard(lines, tc.sort, tc.team, tc.from, tc.to, tc.limit)
			if len(want) < 5 {
				t.Fatalf("only %d players expected: the case tests too little", len(want))
			}
			if !slices.Equal(got, want) {
				t.Errorf("the report lists\n%v\nthe CSV gives\n%v\nreport:\n%s", got, want, out)
			}
			if strings.Contains(string(out), "not in the warehouse") {
				t.Errorf("the report estimated team games, though the warehouse holds the league:\n%s", out)
			}
		})
	}
}

// assertTotals compares the warehouse's league sums with the CSV's latest lines, and its
// line count, runs, home runs and rates with what the generator simulated.
func assertTotals(t *testing.T, p *stack.Pipeline, lines map[string]line, sum summary) {
	sums := make([]string, len(counts))
	for i, c := range counts {
		sums[i] = "SUM(" + c + ")"
	}
	values := make([]int64, len(counts)+1)
	dest := make([]any, len(values))
	for i := range values {
		dest[i] = &values[i]
	}
	if err := p.DB.QueryRow(context.Background(), "SELECT count(*), "+strings.Join(sums, ", ")+" FROM boxscore.fact_batting_game").Scan(dest...); err != nil {
		t.Fatal(err)
	}
	warehouse := map[string]int{"lines": int(values[0])}
	csvTotals := map[string]int{"lines": len(lines)}
	for i, c := range counts {
		warehouse[c] = int(values[i+1])
		for _, l := range lines {
			csvTotals[c] += l.stat[c]
		}
	}
	for name, want := range csvTotals {
		if warehouse[name] != want {
			t.Errorf("%s: the warehouse holds %d, the CSV's latest lines %d", name, warehouse[name], want)
		}
	}
	w := warehouse
	tb := w["hits"] + w["doubles"] + 2*w["triples"] + 3*w["home_runs"]
	generated := fmt.Sprintf("%d lines, %d runs, %d HR, %s/%s/%s", sum.lines, sum.runs, sum.homeRuns, sum.avg, sum.obp, sum.slg)
	loaded := fmt.Sprintf("%d lines, %d runs, %d HR, %s/%s/%s", w["lines"], w["runs"], w["home_runs"],
		rate(w["hits"], w["at_bats"]),
		rate(w["hits"]+w["base_on_balls"]+w["hit_by_pitch"], w["at_bats"]+w["base_on_balls"]+w["hit_by_pitch"]+w["sac_flies"]),
		rate(tb, w["at_bats"]))
	if loaded != generated {
		t.Errorf("the warehouse's league: %s\nthe generator's (play by play, corrections applied): %s", loaded, generated)
	}
}

// reportLine is a leaderboard row: rank, name (may hold spaces), team, then 16 numbers.
var reportLine = regexp.MustCompile(`^\s*\d+\s{2}(.+?)\s{2,}([A-Z]{2,4})\s+((?:\S+\s+){15}\S+)$`)

// reportedPlayers reads the names of the leaderboard's rows, in order.
func reportedPlayers(t *testing.T, out string) []string {
	t.Helper()
	var names []string
	inTable := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		text := sc.Text()
		switch {
		case strings.HasPrefix(strings.TrimSpace(text), "#  Player"):
			inTable = true
		case inTable && strings.TrimSpace(text) == "":
			return names
		case inTable:
			m := reportLine.FindStringSubmatch(text)
			if m == nil {
				t.Fatalf("leaderboard row %q does not parse", text)
			}
			names = append(names, m[1])
		}
	}
	t.Fatalf("no leaderboard in the report:\n%s", out)
	return nil
}

// expectedBoard computes the leaderboard from the CSV's latest lines: each player's totals
// over the dates, his current team (that of his last game in the file), each team's games
// from the lines of its own batters, the rule (3.1 plate appearances per team game, rounded
// to the nearest whole number) for rates, and the order: best first, then more plate
// appearances, then the name. Names are unique in a generated league.
func expectedBoard(lines map[string]line, sortKey, team, fromDate, toDate string, limit int) []string {
	type player struct {
		name, team, last string
		lastNumber       int
		games            int
		stat             map[string]int
	}
	players := map[int64]*player{}
	teamGames := map[string]map[string]bool{}
	for _, l := range lines {
		p := players[l.player]
		if p == nil {
			p = &player{name: l.name, stat: map[string]int{}}
			players[l.player] = p
		}
		if l.gameDate > p.last || (l.gameDate == p.last && l.gameNumber > p.lastNumber) {
			p.team, p.last, p.lastNumber = l.team, l.gameDate, l.gameNumber
		}
		if (fromDate != "" && l.gameDate < fromDate) || (toDate != "" && l.gameDate > toDate) {
			continue
		}
		if teamGames[l.team] == nil {
			teamGames[l.team] = map[string]bool{}
		}
		teamGames[l.team][fmt.Sprintf("%s#%d", l.gameDate, l.gameNumber)] = true
		p.games++
		for c, v := range l.stat {
			p.stat[c] += v
		}
	}
	// thousandths rounds num/den to three decimals, halves up; -1 when undefined.
	thousandths := func(num, den int64) int64 {
		if den == 0 {
			return -1
		}
		return (2000*num + den) / (2 * den)
	}
	value := func(p *player) int64 {
		s := func(c string) int64 { return int64(p.stat[c]) }
		tb := s("hits") + s("doubles") + 2*s("triples") + 3*s("home_runs")
		onBase, onBaseDen := s("hits")+s("base_on_balls")+s("hit_by_pitch"), s("at_bats")+s("base_on_balls")+s("hit_by_pitch")+s("sac_flies")
		switch sortKey {
		case "ops":
			if s("at_bats") == 0 {
				return -1
			}
			return thousandths(onBase*s("at_bats")+tb*onBaseDen, onBaseDen*s("at_bats"))
		case "avg":
			return thousandths(s("hits"), s("at_bats"))
		case "hr":
			return s("home_runs")
		}
		panic("no expected order for " + sortKey)
	}
	rated := sortKey == "ops" || sortKey == "avg"
	var board []*player
	for _, p := range players {
		if p.games == 0 || (team != "" && p.team != team) {
			continue
		}
		if rated && p.stat["plate_appearances"] < (31*len(teamGames[p.team])+5)/10 {
			continue
		}
		board = append(board, p)
	}
	slices.SortFunc(board, func(a, b *player) int {
		return cmp.Or(cmp.Compare(value(b), value(a)), cmp.Compare(b.stat["plate_appearances"], a.stat["plate_appearances"]),
			strings.Compare(a.name, b.name))
	})
	if limit > 0 && len(board) > limit {
		board = board[:limit]
	}
	names := make([]string, len(board))
	for i, p := range board {
		names[i] = p.name
	}
	return names
}
