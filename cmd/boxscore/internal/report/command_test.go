package report

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
)

// The warehouse's views (batting_season, batting_cumulative) belong to the loader, whose
// tests check them, through pkg/seasonview, against the demo season. Here the command runs on
// PostgreSQL against tables with the columns those views have, holding tableRows() and
// sampleSeries(): what is tested is the command's own work (connect, read, print, write the
// chart atomically), and that what it prints is what the warehouse holds.

const fixtureSchema = "report_fixture"

func seedWarehouse(t *testing.T) string {
	t.Helper()
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(pool.Close)
	schema := pgx.Identifier{fixtureSchema}.Sanitize()
	ddl := `
CREATE SCHEMA ` + schema + `;
CREATE TABLE ` + schema + `.batting_season (
	player_id bigint, name text, team text, season int,
	games int, plate_appearances int, at_bats int, runs int, hits int, doubles int, triples int, home_runs int, rbi int,
	base_on_balls int, intentional_walks int, strike_outs int, hit_by_pitch int, sac_bunts int, sac_flies int,
	stolen_bases int, caught_stealing int, ground_into_double_play int, total_bases int,
	avg numeric(4,3), obp numeric(4,3), slg numeric(4,3), ops numeric(4,3), first_game_date date, last_game_date date);
CREATE TABLE ` + schema + `.batting_cumulative (
	player_id bigint, name text, season int, game_date date, game_number int, games int, plate_appearances int,
	ops numeric(4,3));`
	if _, err := pool.Exec(ctx, ddl); err != nil {
		t.Fatalf("create the fixture tables: %v", err)
	}
	rate := func(r Rate) any {
		if !r.Valid {
			return nil
		}
		return r.Float64()
	}
	for _, p := range tableRows() {
		if _, err := pool.Exec(ctx, `INSERT INTO `+schema+`.batting_season VALUES
			($1, $2, 'LAD', 2024, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, $13, 0, 0, 0, $14, 0, 0, 0,
			 $15, $16, $17, $18, '2024-03-20', '2024-06-30')`,
			p.ID, p.Name, p.Games, p.PlateAppearances, p.AtBats, p.Runs, p.Hits, p.Doubles, p.Triples, p.HomeRuns, p.RBI,
			p.BaseOnBalls, p.StrikeOuts, p.StolenBases, rate(p.AVG), rate(p.OBP), rate(p.SLG), rate(p.OPS)); err != nil {
			t.Fatalf("insert %s: %v", p.Name, err)
		}
	}
	for player, points := range sampleSeries() {
		for _, pt := range points {
			if _, err := pool.Exec(ctx, `INSERT INTO `+schema+`.batting_cumulative VALUES ($1, $2, 2024, $3, $4, $5, $6, $7)`,
				player.ID, player.Name, pt.Date, pt.GameNumber, pt.Games, pt.PlateAppearances, rate(pt.OPS)); err != nil {
				t.Fatalf("insert a point of %s: %v", player.Name, err)
			}
		}
	}
	return url
}

func TestCommandRun(t *testing.T) {
	url := seedWarehouse(t)
	chartPath := filepath.Join(t.TempDir(), "not", "yet", "there", "ops.svg")
	cmd := Command{DatabaseURL: url, Schema: fixtureSchema, Season: 2024, Chart: chartPath, Note: "Simulated batting lines"}
	var stdout bytes.Buffer
	if err := cmd.Run(t.Context(), &stdout); err != nil {
		t.Fatalf("Run: %v", err)
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "leaderboard.golden"))
	if err != nil {
		t.Fatal(err)
	}
	want := "Batting, 2024 season\nSimulated batting lines\n\n" + string(golden) + "\nCumulative OPS chart: " + chartPath + "\n"
	if got := stdout.String(); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}

	chart, err := os.ReadFile(chartPath)
	if err != nil {
		t.Fatalf("read chart: %v", err)
	}
	if err := xml.Unmarshal(chart, new(struct{})); err != nil {
		t.Errorf("chart is not well-formed XML: %v", err)
	}
	var fromSeries bytes.Buffer
	if err := WriteOPSChartSVG(&fromSeries, sampleSeries(), "Cumulative OPS by date, 2024 season", cmd.Note); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(chart, fromSeries.Bytes()) {
		t.Errorf("the chart written differs from the chart of the series the warehouse holds")
	}
	leftovers, err := filepath.Glob(filepath.Join(filepath.Dir(chartPath), ".*.tmp"))
	if err != nil || len(leftovers) != 0 {
		t.Errorf("temporary files left beside the chart: %v (%v)", leftovers, err)
	}

	cmd.Season = 2023
	if err := cmd.Run(t.Context(), io.Discard); err == nil || !strings.Contains(err.Error(), "no batting lines for season 2023") {
		t.Errorf("Run for a season without games = %v, want a no-batting-lines error", err)
	}
}

func TestCommandRunReportsAnUnreachableWarehouse(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cmd := Command{DatabaseURL: "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", Schema: fixtureSchema,
		Season: 2024, Chart: filepath.Join(t.TempDir(), "ops.svg")}
	if err := cmd.Run(ctx, io.Discard); err == nil || !strings.Contains(err.Error(), "connect to the warehouse") {
		t.Errorf("Run = %v, want a connect error", err)
	}
}
