package dlq_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/boxscore-dev/boxscore/cmd/boxscore/internal/dlq"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/pkg/pgmigrate"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
)

const schema = "boxscore"

// env is a warehouse migrated with the loader's own migrations (read from the repository,
// since they are internal to the loader's module), so the commands run against the real
// dead_letter and fact_batting_game tables.
type env struct {
	url  string
	pool *pgxpool.Pool
}

func newEnv(t *testing.T) *env {
	t.Helper()
	url := pgtest.NewDatabase(t)
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "services", "loader", "internal", "migrations", "sql")
	if err := pgmigrate.Apply(t.Context(), pool, os.DirFS(dir), "loader", schema, nil); err != nil {
		t.Fatalf("apply the loader's migrations from %s: %v", dir, err)
	}
	return &env{url: url, pool: pool}
}

func (e *env) warehouse() dlq.Warehouse { return dlq.Warehouse{DatabaseURL: e.url, Schema: schema} }

func i32(v int32) *int32 { return &v }

// event is a line that passes the gateway's shape checks; hits > at bats when bad.
func event(player int64, game string, version int64, bad bool) *statsv1.StatEvent {
	hits := int32(1)
	if bad {
		hits = 5
	}
	return &statsv1.StatEvent{
		EventId: statevent.DeterministicEventID(player, game, version),
		Player:  &statsv1.Player{MlbId: player, Name: fmt.Sprintf("Player %d", player), Team: "LAD"},
		Game: &statsv1.Game{GameId: game, Date: "2024-04-01", Opponent: "SF",
			HomeAway: statsv1.HomeAway_HOME_AWAY_HOME, Season: 2024},
		Batting: &statsv1.BattingLine{PlateAppearances: i32(4), AtBats: i32(4), Runs: i32(0), Hits: i32(hits), Doubles: i32(0),
			Triples: i32(0), HomeRuns: i32(0), Rbi: i32(0), BaseOnBalls: i32(0), IntentionalWalks: i32(0), StrikeOuts: i32(1),
			HitByPitch: i32(0), SacBunts: i32(0), SacFlies: i32(0), StolenBases: i32(0), CaughtStealing: i32(0), GroundIntoDoublePlay: i32(0)},
		Version: version,
		Source:  "test",
	}
}

func record(t *testing.T, ev *statsv1.StatEvent) []byte {
	t.Helper()
	data, err := statevent.EncodeEnvelope(ev, time.Date(2024, 4, 1, 20, 0, 0, 0, time.UTC), map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func rowPayload(t *testing.T, player int64, game string, version int64) []byte {
	t.Helper()
	data, err := protojson.Marshal(&warehousev1.BattingGameRow{
		EventId: statevent.DeterministicEventID(player, game, version), Version: version,
		Player: &statsv1.Player{MlbId: player, Name: "Row Player", Team: "LAD"}, GameId: game, GameDate: "2024-04-02",
		Season: 2024, Opponent: "SD", Home: false, PlateAppearances: 4, AtBats: 4, Hits: 2, Singles: 2, TotalBases: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// letter inserts a dead letter created age ago and returns its id.
func (e *env) letter(t *testing.T, stage, reason, eventID string, payload []byte, age time.Duration) int64 {
	t.Helper()
	var id int64
	err := e.pool.QueryRow(t.Context(), `
INSERT INTO boxscore.dead_letter (stage, reason, detail, field, event_id, stream, shard_id, sequence_number, payload, created_at)
VALUES ($1, $2, 'a detail', 'batting.hits', NULLIF($3, ''), 'stats', 'shardId-000000000001', (SELECT count(*) + 1000 FROM boxscore.dead_letter)::text, $4, now() - $5::interval)
RETURNING id`, stage, reason, eventID, payload, age.String()).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// fact stores a row of (player, game) at version in the fact table.
func (e *env) fact(t *testing.T, player int64, game string, version int64) {
	t.Helper()
	_, err := e.pool.Exec(t.Context(), `
INSERT INTO boxscore.fact_batting_game (player_id, game_id, game_date, game_number, season, opponent, home,
	plate_appearances, at_bats, runs, hits, singles, doubles, triples, home_runs, rbi, base_on_balls, intentional_walks,
	strike_outs, hit_by_pitch, sac_bunts, sac_flies, stolen_bases, caught_stealing, ground_into_double_play, total_bases,
	extra_base_hits, times_on_base, event_id, version)
VALUES ($1, $2, '2024-04-01', 0, 2024, 'SF', true, 4, 4, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 'fact', $3)`,
		player, game, version)
	if err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, fn func(ctx context.Context, stdout, stderr *bytes.Buffer) error) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := fn(t.Context(), &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}
