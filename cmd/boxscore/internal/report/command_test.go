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

	"github.com/boxscore-dev/boxscore/pkg/seasonview"
)

// The command runs on PostgreSQL against the loader's real migrations (seedBothEngines,
// schema pg): what it prints must be what the warehouse's own batting_season view holds,
// read through pkg/seasonview, and the chart the one of batting_cumulative's points.

func TestCommandRun(t *testing.T) {
	url, pool := seedBothEngines(t)
	chartPath := filepath.Join(t.TempDir(), "not", "yet", "there", "ops.svg")
	everyone := 0
	cmd := Command{DatabaseURL: url, Schema: "pg", Season: 2024, Chart: chartPath, Note: "Simulated batting lines", Sort: "ops", MinPA: &everyone}
	var stdout bytes.Buffer
	if err := cmd.Run(t.Context(), &stdout); err != nil {
		t.Fatalf("Run: %v", err)
	}
	season, err := seasonview.Season(t.Context(), pool, "pg", 2024)
	if err != nil || len(season) != 4 {
		t.Fatalf("batting_season: %d rows, %v; want the 4 players", len(season), err)
	}
	var table bytes.Buffer
	if err := WriteLeaderboard(&table, season, "ops"); err != nil {
		t.Fatal(err)
	}
	want := "Batting, 2024 season\nSimulated batting lines\nBy OPS, players with 0 plate appearances or more: 4 of 4\n\n" +
		table.String() + "\nCumulative OPS chart: " + chartPath + "\n"
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
	series, err := seasonview.CumulativeOPS(t.Context(), pool, "pg", 2024)
	if err != nil {
		t.Fatal(err)
	}
	var fromSeries bytes.Buffer
	if err := WriteOPSChartSVG(&fromSeries, series, "Cumulative OPS by date, 2024 season", cmd.Note); err != nil {
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
	if err := cmd.Run(t.Context(), io.Discard); err == nil || !strings.Contains(err.Error(), "no batting lines for 2023 season") {
		t.Errorf("Run for a season without games = %v, want a no-batting-lines error", err)
	}
	cmd.Season, cmd.MinPA = 2024, nil
	cmd.Team = "SD"
	if err := cmd.Run(t.Context(), io.Discard); err == nil || !strings.Contains(err.Error(), "no batting lines for 2024 season, SD") {
		t.Errorf("Run for a team without players = %v, want a no-batting-lines error", err)
	}
}

func TestCommandRefusesBadFilters(t *testing.T) {
	negative := -3
	for _, tc := range []struct {
		cmd  Command
		want string
	}{
		{Command{From: "2024-13-01"}, "--from \"2024-13-01\" is not a date"},
		{Command{To: "May 5"}, "--to \"May 5\" is not a date"},
		{Command{From: "2024-06-01", To: "2024-05-01"}, "before --from"},
		{Command{Team: "la'd"}, "not a team abbreviation"},
		{Command{Limit: -1}, "--limit -1 is negative"},
		{Command{MinPA: &negative}, "--min-pa -3 is negative"},
	} {
		if err := tc.cmd.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error saying %q", tc.cmd, err, tc.want)
		}
		// Run refuses them too, before connecting anywhere.
		tc.cmd.DatabaseURL = "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=1"
		if err := tc.cmd.Run(t.Context(), io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run(%+v) = %v, want an error saying %q", tc.cmd, err, tc.want)
		}
	}
}

func TestCommandRunReportsAnUnreachableWarehouse(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cmd := Command{DatabaseURL: "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", Schema: "pg",
		Season: 2024, Chart: filepath.Join(t.TempDir(), "ops.svg")}
	if err := cmd.Run(ctx, io.Discard); err == nil || !strings.Contains(err.Error(), "connect to the warehouse") {
		t.Errorf("Run = %v, want a connect error", err)
	}
}
