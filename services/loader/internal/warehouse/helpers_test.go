package warehouse_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/timestamppb"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	streamv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stream/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/pkg/testutil/pgtest"
	"github.com/boxscore-dev/boxscore/services/loader/internal/migrations"
	"github.com/boxscore-dev/boxscore/services/loader/internal/warehouse"
)

// testSchema is not the default, to prove the store follows the configured schema.
const testSchema = "wh"

const (
	testStream = "boxscore-events"
	testShard  = "shardId-000000000001"
	// testLeaseToken is the token newEnv claims testShard with, and request sends.
	testLeaseToken = 1
	testOwner      = "consumer-a"
)

type env struct {
	pool  *pgxpool.Pool
	store loaderStore
	// redshift is set for the Redshift path (newRedshiftEnv).
	redshift *redshiftParts
}

// newEnv migrates a fresh database and returns a Store over it, with testShard claimed
// under testLeaseToken as a consumer does before its first load. maxConns 1 makes every
// load reuse one session, so the per-transaction staging table and cached statements are
// exercised across loads.
func newEnv(t *testing.T, maxConns int32) *env {
	t.Helper()
	return newEnvWithTracer(t, maxConns, nil)
}

// newEnvWithTracer is newEnv with tracer (a pgx.QueryTracer, and optionally BatchTracer
// and CopyFromTracer) on every connection of the pool.
func newEnvWithTracer(t *testing.T, maxConns int32, tracer pgx.QueryTracer) *env {
	t.Helper()
	config, err := pgxpool.ParseConfig(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatalf("parse config: %v", err)
	}
	config.MaxConns = maxConns
	config.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(t.Context(), config)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	if err := migrations.Apply(t.Context(), pool, testSchema, nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	store, err := warehouse.NewStore(pool, testSchema)
	if err != nil {
		t.Fatalf("store: %v", err)
	}
	mustClaim(t, store, testShard, testLeaseToken, testOwner)
	return &env{pool: pool, store: store}
}

func claimRequest(shardID string, token int64, owner string) *loadv1.ClaimShardRequest {
	return &loadv1.ClaimShardRequest{Stream: testStream, ShardId: shardID, LeaseToken: token, Owner: owner}
}

func mustClaim(t *testing.T, s loaderStore, shardID string, token int64, owner string) *loadv1.Checkpoint {
	t.Helper()
	cp, err := s.ClaimShard(t.Context(), claimRequest(shardID, token, owner))
	if err != nil {
		t.Fatalf("ClaimShard(%s, %d, %s): %v", shardID, token, owner, err)
	}
	return cp
}

func position(seq string) *streamv1.RecordPosition {
	return &streamv1.RecordPosition{Stream: testStream, ShardId: testShard, SequenceNumber: seq}
}

// newRow returns a row whose every field holds a distinct, non-zero value derived from
// its arguments, so a swapped or dropped column shows.
func newRow(playerID int64, gameID string, version int64, eventID, seq string) *warehousev1.BattingGameRow {
	return &warehousev1.BattingGameRow{
		EventId:              eventID,
		Version:              version,
		Player:               &statsv1.Player{MlbId: playerID, Name: fmt.Sprintf("Player %d", playerID), Team: "LAD"},
		GameId:               gameID,
		GameDate:             "2024-04-01",
		GameNumber:           1,
		Season:               2024,
		Opponent:             "SFG",
		Home:                 true,
		PlateAppearances:     41,
		AtBats:               42,
		Runs:                 43,
		Hits:                 44,
		Singles:              45,
		Doubles:              46,
		Triples:              47,
		HomeRuns:             48,
		Rbi:                  49,
		BaseOnBalls:          50,
		IntentionalWalks:     51,
		StrikeOuts:           52,
		HitByPitch:           53,
		SacBunts:             54,
		SacFlies:             55,
		StolenBases:          56,
		CaughtStealing:       57,
		GroundIntoDoublePlay: 58,
		TotalBases:           59,
		ExtraBaseHits:        60,
		TimesOnBase:          61,
		SourceTime:           timestamppb.New(time.Date(2024, 4, 1, 23, 10, 5, 123456000, time.UTC)),
		AcceptedAt:           timestamppb.New(time.Date(2024, 4, 1, 23, 10, 6, 654321000, time.UTC)),
		Position:             position(seq),
		TraceId:              "4bf92f3577b34da6a3ce929d0e0e4736",
	}
}

func newRejection(seq, stage string) *warehousev1.Rejection {
	return &warehousev1.Rejection{
		Position: position(seq),
		Stage:    stage,
		Reason:   "hits_exceed_at_bats",
		Detail:   "hits 5 > at_bats 4",
		Field:    "batting.hits",
		EventId:  "evt-rejected-" + seq,
		Payload:  []byte{0x0a, 0x00, 0xff, byte(len(seq))},
	}
}

func request(expected, seq string, rows ...*warehousev1.BattingGameRow) *loadv1.LoadRequest {
	return &loadv1.LoadRequest{
		Stream:                 testStream,
		ShardId:                testShard,
		ExpectedSequenceNumber: expected,
		SequenceNumber:         seq,
		Rows:                   rows,
		ConsumerId:             testOwner,
		LeaseToken:             testLeaseToken,
	}
}

func mustLoad(t *testing.T, s loaderStore, req *loadv1.LoadRequest) *loadv1.LoadResponse {
	t.Helper()
	resp, err := s.Load(t.Context(), req)
	if err != nil {
		t.Fatalf("Load(%s -> %s): %v", req.GetExpectedSequenceNumber(), req.GetSequenceNumber(), err)
	}
	return resp
}

type counts struct{ inserted, updated, unchanged, deadLettered int32 }

func assertCounts(t *testing.T, resp *loadv1.LoadResponse, want counts) {
	t.Helper()
	got := counts{resp.GetInserted(), resp.GetUpdated(), resp.GetUnchanged(), resp.GetDeadLettered()}
	if got != want {
		t.Errorf("counts = %+v, want %+v", got, want)
	}
}

// storedFact is a fact_batting_game row as read back, loaded_at aside.
type storedFact struct {
	PlayerID                                                           int64
	GameID                                                             string
	GameDate                                                           string
	GameNumber, Season                                                 int16
	Opponent                                                           string
	Home                                                               bool
	PA, AB, R, H, Singles, Doubles, Triples, HR, RBI, BB, IBB, SO, HBP int32
	SH, SF, SB, CS, GIDP, TB, XBH, TOB                                 int32
	EventID                                                            string
	Version                                                            int64
	SourceTime, AcceptedAt                                             *time.Time
	SourceStream, SourceShardID, SourceSequenceNumber, TraceID         *string
}

const selectFactSQL = `
SELECT player_id, game_id, to_char(game_date, 'YYYY-MM-DD'), game_number, season, opponent, home,
    plate_appearances, at_bats, runs, hits, singles, doubles, triples, home_runs, rbi,
    base_on_balls, intentional_walks, strike_outs, hit_by_pitch, sac_bunts, sac_flies,
    stolen_bases, caught_stealing, ground_into_double_play, total_bases, extra_base_hits, times_on_base,
    event_id, version, source_time, accepted_at,
    source_stream, source_shard_id, source_sequence_number, trace_id
FROM ` + testSchema + `.fact_batting_game WHERE player_id = $1 AND game_id = $2`

func readFact(t *testing.T, pool *pgxpool.Pool, playerID int64, gameID string) storedFact {
	t.Helper()
	var f storedFact
	err := pool.QueryRow(t.Context(), selectFactSQL, playerID, gameID).Scan(
		&f.PlayerID, &f.GameID, &f.GameDate, &f.GameNumber, &f.Season, &f.Opponent, &f.Home,
		&f.PA, &f.AB, &f.R, &f.H, &f.Singles, &f.Doubles, &f.Triples, &f.HR, &f.RBI,
		&f.BB, &f.IBB, &f.SO, &f.HBP, &f.SH, &f.SF,
		&f.SB, &f.CS, &f.GIDP, &f.TB, &f.XBH, &f.TOB,
		&f.EventID, &f.Version, &f.SourceTime, &f.AcceptedAt,
		&f.SourceStream, &f.SourceShardID, &f.SourceSequenceNumber, &f.TraceID)
	if err != nil {
		t.Fatalf("read fact (%d, %s): %v", playerID, gameID, err)
	}
	for _, ts := range []*time.Time{f.SourceTime, f.AcceptedAt} {
		if ts != nil {
			*ts = ts.UTC()
		}
	}
	return f
}

func ptr[T any](v T) *T { return &v }

func optionalText(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optionalTime(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	return ptr(ts.AsTime())
}

// wantFact is what row must look like once stored.
func wantFact(row *warehousev1.BattingGameRow) storedFact {
	return storedFact{
		PlayerID: row.GetPlayer().GetMlbId(), GameID: row.GetGameId(), GameDate: row.GetGameDate(),
		GameNumber: int16(row.GetGameNumber()), Season: int16(row.GetSeason()),
		Opponent: row.GetOpponent(), Home: row.GetHome(),
		PA: row.GetPlateAppearances(), AB: row.GetAtBats(), R: row.GetRuns(), H: row.GetHits(),
		Singles: row.GetSingles(), Doubles: row.GetDoubles(), Triples: row.GetTriples(), HR: row.GetHomeRuns(),
		RBI: row.GetRbi(), BB: row.GetBaseOnBalls(), IBB: row.GetIntentionalWalks(), SO: row.GetStrikeOuts(),
		HBP: row.GetHitByPitch(), SH: row.GetSacBunts(), SF: row.GetSacFlies(), SB: row.GetStolenBases(),
		CS: row.GetCaughtStealing(), GIDP: row.GetGroundIntoDoublePlay(), TB: row.GetTotalBases(),
		XBH: row.GetExtraBaseHits(), TOB: row.GetTimesOnBase(),
		EventID: row.GetEventId(), Version: row.GetVersion(),
		SourceTime: optionalTime(row.GetSourceTime()), AcceptedAt: optionalTime(row.GetAcceptedAt()),
		SourceStream:         optionalText(row.GetPosition().GetStream()),
		SourceShardID:        optionalText(row.GetPosition().GetShardId()),
		SourceSequenceNumber: optionalText(row.GetPosition().GetSequenceNumber()),
		TraceID:              optionalText(row.GetTraceId()),
	}
}

func assertFact(t *testing.T, pool *pgxpool.Pool, row *warehousev1.BattingGameRow) {
	t.Helper()
	got := readFact(t, pool, row.GetPlayer().GetMlbId(), row.GetGameId())
	if want := wantFact(row); !reflect.DeepEqual(got, want) {
		t.Errorf("stored fact:\n got %s\nwant %s", describe(got), describe(want))
	}
}

// describe prints a storedFact with its pointers followed.
func describe(f storedFact) string {
	text := func(p *string) string {
		if p == nil {
			return "NULL"
		}
		return *p
	}
	tm := func(p *time.Time) string {
		if p == nil {
			return "NULL"
		}
		return p.Format(time.RFC3339Nano)
	}
	g := f
	g.SourceTime, g.AcceptedAt, g.SourceStream, g.SourceShardID, g.SourceSequenceNumber, g.TraceID = nil, nil, nil, nil, nil, nil
	return fmt.Sprintf("%+v source_time=%s accepted_at=%s stream=%s shard=%s seq=%s trace=%s", g,
		tm(f.SourceTime), tm(f.AcceptedAt), text(f.SourceStream), text(f.SourceShardID),
		text(f.SourceSequenceNumber), text(f.TraceID))
}

func countRows(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM `+testSchema+`.`+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func assertCheckpoint(t *testing.T, s loaderStore, wantSeq string, wantShardEnd bool) *loadv1.Checkpoint {
	t.Helper()
	got, err := s.GetCheckpoint(t.Context(), testStream, testShard)
	if err != nil {
		t.Fatalf("GetCheckpoint: %v", err)
	}
	if got.GetSequenceNumber() != wantSeq || got.GetShardEnd() != wantShardEnd ||
		got.GetStream() != testStream || got.GetShardId() != testShard {
		t.Errorf("checkpoint = %v, want %s/%s at %q shard_end=%t", got, testStream, testShard, wantSeq, wantShardEnd)
	}
	return got
}

// assertMismatch checks that err is a checkpoint mismatch carrying the stored position.
func assertMismatch(t *testing.T, err error, wantStoredSeq string, wantShardEnd bool) {
	t.Helper()
	if !errors.Is(err, warehouse.ErrCheckpointMismatch) {
		t.Fatalf("error = %v, want a checkpoint mismatch", err)
	}
	var mismatch *warehouse.CheckpointMismatchError
	if !errors.As(err, &mismatch) {
		t.Fatalf("error %v is not a *CheckpointMismatchError", err)
	}
	if mismatch.Stored.GetSequenceNumber() != wantStoredSeq || mismatch.Stored.GetShardEnd() != wantShardEnd {
		t.Errorf("stored checkpoint in error = %v, want %q shard_end=%t", mismatch.Stored, wantStoredSeq, wantShardEnd)
	}
	if mismatch.Stored.GetStream() != testStream || mismatch.Stored.GetShardId() != testShard {
		t.Errorf("stored checkpoint in error names %s/%s, want %s/%s",
			mismatch.Stored.GetStream(), mismatch.Stored.GetShardId(), testStream, testShard)
	}
	if warehouse.IsTransient(err) {
		t.Errorf("IsTransient(mismatch) = true, want false")
	}
}

// holdCheckpointLock locks the test shard's checkpoint row from another session until the
// returned function is called.
func holdCheckpointLock(t *testing.T, pool *pgxpool.Pool) (release func()) {
	t.Helper()
	ctx := context.WithoutCancel(t.Context())
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM `+testSchema+`.shard_checkpoint WHERE stream = $1 AND shard_id = $2 FOR UPDATE`,
		testStream, testShard); err != nil {
		t.Fatalf("lock checkpoint row: %v", err)
	}
	return func() {
		if err := tx.Rollback(ctx); err != nil {
			t.Errorf("release checkpoint lock: %v", err)
		}
	}
}
