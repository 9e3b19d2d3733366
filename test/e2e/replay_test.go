package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/boxscore-dev/boxscore/test/stack"
)

// demoSeason reads the demo CSV with encoding/csv, independently of the code under test:
// "player_id/game_id" -> the counting columns as written in the file.
func demoSeason(t *testing.T) (string, map[string][]string) {
	t.Helper()
	root, err := stack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "k8s/local/demo/dodgers-2024-mar-jun.csv")
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
	want := map[string][]string{}
	for _, r := range records[1:] {
		var stats []string
		for _, name := range countingColumns {
			stats = append(stats, r[col[name]])
		}
		want[r[col["player_id"]]+"/"+r[col["game_id"]]] = stats
	}
	return path, want
}

var countingColumns = []string{"plate_appearances", "at_bats", "runs", "hits", "doubles", "triples", "home_runs", "rbi",
	"base_on_balls", "intentional_walks", "strike_outs", "hit_by_pitch", "sac_bunts", "sac_flies", "stolen_bases",
	"caught_stealing", "ground_into_double_play", "total_bases"}

// warehouseSnapshot renders every fact row, load time and source position included, so
// two snapshots are equal only if no row was inserted, deleted or rewritten.
func warehouseSnapshot(t *testing.T, conn *pgxpool.Pool) (map[string][]string, string) {
	t.Helper()
	ctx := context.Background()
	rows, err := conn.Query(ctx, "SELECT player_id::text || '/' || game_id, "+strings.Join(countingColumns, "::text, ")+"::text, "+
		"event_id || ' ' || version || ' ' || loaded_at::text || ' ' || source_shard_id || ' ' || source_sequence_number "+
		"FROM boxscore.fact_batting_game ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string][]string{}
	var full strings.Builder
	for rows.Next() {
		values := make([]string, len(countingColumns)+2)
		dest := make([]any, len(values))
		for i := range values {
			dest[i] = &values[i]
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		got[values[0]] = values[1 : len(values)-1]
		fmt.Fprintln(&full, strings.Join(values, ","))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got, full.String()
}

type replayEnv struct {
	*stack.Pipeline
	csvPath    string
	wantSeason map[string][]string
}

func newReplayEnv(t *testing.T) *replayEnv {
	t.Helper()
	// The demo's three players all hash to one shard of two: these tests are about the
	// replay's idempotence, not about spreading (TestPipelineEndToEnd covers every shard).
	p := stack.NewPipeline(t, stack.PipelineConfig{Shards: 2})
	p.StartAll()
	path, want := demoSeason(t)
	return &replayEnv{Pipeline: p, csvPath: path, wantSeason: want}
}

func (e *replayEnv) replay(t *testing.T, extra ...string) *exec.Cmd {
	t.Helper()
	args := append([]string{"replay", e.csvPath, "--gateway", e.GatewayURL(), "--progress", "log"}, extra...)
	cmd := exec.Command(e.CLIPath(), args...)
	return cmd
}

func (e *replayEnv) assertFullSeason(t *testing.T) string {
	t.Helper()
	got, full := warehouseSnapshot(t, e.DB)
	if len(got) != len(e.wantSeason) {
		t.Fatalf("warehouse holds %d lines, the CSV has %d", len(got), len(e.wantSeason))
	}
	for key, want := range e.wantSeason {
		if strings.Join(got[key], ",") != strings.Join(want, ",") {
			t.Errorf("%s: warehouse %v, CSV %v", key, got[key], want)
		}
	}
	if dead := e.Count("SELECT count(*) FROM boxscore.dead_letter"); dead != 0 {
		t.Errorf("%d dead letters for a valid season", dead)
	}
	return full
}

func TestReplayingTheDemoTwiceChangesNothing(t *testing.T) {
	e := newReplayEnv(t)
	if out, err := e.replay(t).CombinedOutput(); err != nil {
		t.Fatalf("first replay: %v\n%s", err, out)
	}
	e.Settle(60 * time.Second)
	before := e.assertFullSeason(t)

	out, err := e.replay(t).CombinedOutput()
	if err != nil {
		t.Fatalf("second replay: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("accepted:       235")) {
		t.Fatalf("second replay summary does not say 235 accepted:\n%s", out)
	}
	e.Settle(60 * time.Second) // the second copy of every event has been read and committed
	after := e.assertFullSeason(t)
	if before != after {
		t.Fatalf("the second replay changed the warehouse:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestReplayKilledHalfwayThenRerunEndsWithTheFullSeason(t *testing.T) {
	e := newReplayEnv(t)
	var progress syncBuffer
	cmd := e.replay(t, "--days-per-second", "20")
	cmd.Stdout, cmd.Stderr = &progress, &progress
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it without warning once it is well into the season.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(progress.String(), "(2024-05") {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("replay never reached May:\n%s", progress.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	e.Settle(60 * time.Second)
	partial, _ := warehouseSnapshot(t, e.DB)
	if len(partial) == 0 || len(partial) >= len(e.wantSeason) {
		t.Fatalf("after the kill the warehouse holds %d of %d lines; the kill did not land halfway", len(partial), len(e.wantSeason))
	}
	t.Logf("killed after %d of %d lines", len(partial), len(e.wantSeason))

	if out, err := e.replay(t).CombinedOutput(); err != nil {
		t.Fatalf("rerun: %v\n%s", err, out)
	}
	e.Settle(60 * time.Second)
	e.assertFullSeason(t)
}

// syncBuffer is a buffer the command's output goroutine writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
