package leaguegen_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/ingestclient/gatewaytest"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/leaguegen"
	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/replay"
)

// Two weeks of the league replayed into a fake gateway that validates like the real one:
// every row, corrections included, is accepted, under the ids the rows derive.
func TestReplayTakesTheGeneratedFile(t *testing.T) {
	res, err := leaguegen.Generate(leaguegen.Options{Seed: 3, Season: 2024, From: date("2024-06-01"), To: date("2024-06-14")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Corrections == 0 {
		t.Fatal("no corrections in two weeks: the test would prove nothing about them")
	}
	path := filepath.Join(t.TempDir(), "june.csv")
	if err := os.WriteFile(path, csvOf(t, res.Rows), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := gatewaytest.Start(t)
	cmd := &replay.Command{Source: path, Gateway: gw.URL, BatchSize: 500, Progress: "none", RetryBudget: 10 * time.Second}
	cmd.Dir = t.TempDir() // never the checkout's .run/api-key
	var stdout, stderr bytes.Buffer
	if err := cmd.Run(context.Background(), &stdout, &stderr); err != nil {
		t.Fatalf("replay: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	accepted := gw.Accepted()
	if len(accepted) != len(res.Rows) {
		t.Fatalf("gateway accepted %d events of %d rows:\n%s", len(accepted), len(res.Rows), stdout.String())
	}
	ids := map[string]bool{}
	corrections := 0
	for _, ev := range accepted {
		ids[ev.GetEventId()] = true
		if ev.GetVersion() == 2 {
			corrections++
		}
	}
	if corrections != res.Corrections || len(ids) != len(res.Rows) {
		t.Fatalf("%d corrections and %d distinct ids accepted; want %d and %d", corrections, len(ids), res.Corrections, len(res.Rows))
	}
}
