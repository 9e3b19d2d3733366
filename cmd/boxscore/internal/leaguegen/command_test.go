package leaguegen_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/leaguegen"
)

func TestCommandWritesTheFileAndASummary(t *testing.T) {
	out := filepath.Join(t.TempDir(), "may.csv")
	cmd := leaguegen.Command{Seed: 7, Season: 2024, From: "2024-05-01", To: "2024-05-07", Teams: []string{"lad", " NYY"}, Out: out}
	if err := cmd.Validate(); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := cmd.Run(&stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout holds %d bytes with --out", stdout.Len())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	rows := readBack(t, data)
	if len(rows) == 0 {
		t.Fatal("no rows")
	}
	for _, r := range rows {
		if (r.Team != "LAD" && r.Team != "NYY") || r.GameDate < "2024-05-01" || r.GameDate > "2024-05-07" {
			t.Fatalf("row outside the selection: %+v", r)
		}
	}
	summary := stderr.String()
	for _, want := range []string{"season 2024, seed 7 -> " + out, "games:", "players:", "lines:", "corrections:", "league:"} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("the output directory holds %d files (a temporary file left behind?)", len(entries))
	}

	// To stdout, the same bytes.
	cmd.Out = "-"
	stdout.Reset()
	if err := cmd.Run(&stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stdout.Bytes(), data) {
		t.Error("stdout and --out differ")
	}
}

func TestCommandRejectsBadFlags(t *testing.T) {
	for _, cmd := range []leaguegen.Command{
		{Season: 2024, From: "2024-13-01"},
		{Season: 2024, To: "2023-05-01"},
		{Season: 2024, Teams: []string{"LAX"}},
		{Season: 2024, From: "2024-06-01", To: "2024-05-01"},
		{Season: 2022},
	} {
		if err := cmd.Validate(); err == nil {
			t.Errorf("%+v accepted", cmd)
		}
		if err := cmd.Run(&bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("%+v ran", cmd)
		}
	}
}
