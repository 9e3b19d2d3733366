package warehouse_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	loadv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/load/v1"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/services/loader/internal/warehouse"
)

func TestLoadInsertsEveryValueAsGiven(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		full := newRow(660271, "746123", 3, "evt-full", "101")
		// A row with every optional value absent: they must be stored as NULL.
		sparse := newRow(592450, "746123", 1, "evt-sparse", "102")
		sparse.Home = false
		sparse.SourceTime, sparse.AcceptedAt, sparse.Position, sparse.TraceId = nil, nil, nil, ""

		resp := mustLoad(t, e.store, request("", "102", full, sparse))

		assertCounts(t, resp, counts{inserted: 2})
		if cp := resp.GetCheckpoint(); cp.GetSequenceNumber() != "102" || cp.GetShardEnd() || cp.GetUpdatedAt() == nil ||
			cp.GetStream() != testStream || cp.GetShardId() != testShard {
			t.Errorf("response checkpoint = %v, want %s/%s at 102 with updated_at", cp, testStream, testShard)
		}
		assertFact(t, e.pool, full)
		assertFact(t, e.pool, sparse)

		var name, team, lastGame string
		if err := e.pool.QueryRow(t.Context(),
			`SELECT name, team, to_char(last_game_date, 'YYYY-MM-DD') FROM `+testSchema+`.dim_player WHERE player_id = 660271`,
		).Scan(&name, &team, &lastGame); err != nil {
			t.Fatalf("read dim_player: %v", err)
		}
		if name != "Player 660271" || team != "LAD" || lastGame != "2024-04-01" {
			t.Errorf("dim_player = (%q, %q, %s), want (Player 660271, LAD, 2024-04-01)", name, team, lastGame)
		}
		if n := countRows(t, e.pool, "dim_player"); n != 2 {
			t.Errorf("dim_player has %d rows, want 2", n)
		}
		var consumer string
		if err := e.pool.QueryRow(t.Context(), `SELECT consumer_id FROM `+testSchema+`.shard_checkpoint`).Scan(&consumer); err != nil {
			t.Fatalf("read consumer_id: %v", err)
		}
		if consumer != "consumer-a" {
			t.Errorf("consumer_id = %q, want consumer-a", consumer)
		}
	})
}

func TestRedeliveredBatchIsRefusedAndChangesNothing(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		req := request("", "200", newRow(1, "g1", 1, "evt-1", "150"))
		req.Rejections = []*warehousev1.Rejection{newRejection("180", "validate")}
		mustLoad(t, e.store, req)
		var loadedAt time.Time
		if err := e.pool.QueryRow(t.Context(), `SELECT loaded_at FROM `+testSchema+`.fact_batting_game`).Scan(&loadedAt); err != nil {
			t.Fatalf("read loaded_at: %v", err)
		}

		// The consumer did not hear back and sends the very same batch again.
		_, err := e.store.Load(t.Context(), req)
		assertMismatch(t, err, "200", false)

		var loadedAtAfter time.Time
		if err := e.pool.QueryRow(t.Context(), `SELECT loaded_at FROM `+testSchema+`.fact_batting_game`).Scan(&loadedAtAfter); err != nil {
			t.Fatalf("read loaded_at: %v", err)
		}
		if !loadedAtAfter.Equal(loadedAt) {
			t.Errorf("loaded_at moved from %v to %v: the refused batch touched the row", loadedAt, loadedAtAfter)
		}
		if n := countRows(t, e.pool, "fact_batting_game"); n != 1 {
			t.Errorf("fact rows = %d, want 1", n)
		}
		if n := countRows(t, e.pool, "dead_letter"); n != 1 {
			t.Errorf("dead letters = %d, want 1", n)
		}
		assertCheckpoint(t, e.store, "200", false)
	})
}

func TestRedeliveredRowInLaterBatchIsUnchanged(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		row := newRow(1, "g1", 1, "evt-1", "10")
		mustLoad(t, e.store, request("", "10", row))

		// The producer sent the same report twice; the second copy lands in a later batch.
		again := newRow(1, "g1", 1, "evt-1", "15")
		other := newRow(2, "g1", 1, "evt-2", "20")
		resp := mustLoad(t, e.store, request("10", "20", again, other))

		assertCounts(t, resp, counts{inserted: 1, unchanged: 1})
		assertFact(t, e.pool, row) // still the first copy, source position included
		assertFact(t, e.pool, other)
	})
}

func TestNewerVersionReplacesOlderDoesNot(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		// As on a database created with a linguistic default collation, where "evt-B" sorts
		// after "evt-a": the store must still order event ids byte-wise, as the in-batch
		// deduplication does. (Redshift has no such collation: its VARCHAR compares
		// byte-wise, as the C.UTF-8 test database does, and its statements use no COLLATE.)
		if e.redshift == nil {
			if _, err := e.pool.Exec(t.Context(),
				`ALTER TABLE `+testSchema+`.fact_batting_game ALTER COLUMN event_id TYPE text COLLATE "und-x-icu"`); err != nil {
				t.Fatalf("set a linguistic collation: %v", err)
			}
		}
		v1 := newRow(1, "g1", 1, "evt-a", "10")
		mustLoad(t, e.store, request("", "10", v1))

		v2 := newRow(1, "g1", 2, "evt-a", "20")
		v2.Hits, v2.Singles, v2.TotalBases, v2.Opponent = 3, 2, 4, "ARI"
		assertCounts(t, mustLoad(t, e.store, request("10", "20", v2)), counts{updated: 1})
		assertFact(t, e.pool, v2)

		// v1 arrives again, late: it must not bring the old line back.
		late := newRow(1, "g1", 1, "evt-a", "30")
		assertCounts(t, mustLoad(t, e.store, request("20", "30", late)), counts{unchanged: 1})
		assertFact(t, e.pool, v2)

		// Same version: event_id breaks the tie, compared byte-wise ("B" < "a" in "C" order,
		// but not in most linguistic collations).
		tieLower := newRow(1, "g1", 2, "evt-B", "40")
		assertCounts(t, mustLoad(t, e.store, request("30", "40", tieLower)), counts{unchanged: 1})
		assertFact(t, e.pool, v2)
		tieHigher := newRow(1, "g1", 2, "evt-b", "50")
		tieHigher.Runs = 9
		assertCounts(t, mustLoad(t, e.store, request("40", "50", tieHigher)), counts{updated: 1})
		assertFact(t, e.pool, tieHigher)
	})
}

func TestDuplicateKeysInOneBatch(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		v2 := newRow(7, "g1", 2, "evt-2", "11")
		v3 := newRow(7, "g1", 3, "evt-3a", "12")
		v3.Runs = 3
		v3tie := newRow(7, "g1", 3, "evt-3b", "13") // same version, greater event_id: wins
		v3tie.Runs = 4
		v1 := newRow(7, "g1", 1, "evt-1", "14")
		other := newRow(8, "g1", 1, "evt-8", "15")

		resp := mustLoad(t, e.store, request("", "15", v2, v3tie, v3, v1, other))

		assertCounts(t, resp, counts{inserted: 2, unchanged: 3})
		assertFact(t, e.pool, v3tie)
		assertFact(t, e.pool, other)
	})
}

type storedLetter struct {
	stage, reason, stream, shard, seq string
	detail, field, eventID            *string
	payload                           []byte
}

func readLetters(t *testing.T, pool *pgxpool.Pool) []storedLetter {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
		SELECT stage, reason, detail, field, event_id, stream, shard_id, sequence_number, payload
		FROM `+testSchema+`.dead_letter ORDER BY sequence_number, stage`)
	if err != nil {
		t.Fatalf("read dead letters: %v", err)
	}
	defer rows.Close()
	var letters []storedLetter
	for rows.Next() {
		var l storedLetter
		if err := rows.Scan(&l.stage, &l.reason, &l.detail, &l.field, &l.eventID, &l.stream, &l.shard, &l.seq, &l.payload); err != nil {
			t.Fatalf("scan dead letter: %v", err)
		}
		letters = append(letters, l)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read dead letters: %v", err)
	}
	return letters
}

func TestRejectionsLandInDeadLetterOnce(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		decode := newRejection("31", "decode")
		decode.Detail, decode.Field, decode.EventId = "", "", "" // stored as NULL
		validate := newRejection("32", "validate")
		req := request("", "40")
		// The same rejection twice in one batch is written once; another stage for the same
		// record is a separate dead letter.
		req.Rejections = []*warehousev1.Rejection{decode, validate, newRejection("32", "validate"), newRejection("32", "decode")}
		assertCounts(t, mustLoad(t, e.store, req), counts{deadLettered: 3})

		letters := readLetters(t, e.pool)
		if len(letters) != 3 {
			t.Fatalf("dead letters = %d, want 3: %+v", len(letters), letters)
		}
		first := letters[0]
		if first.stage != "decode" || first.seq != "31" || first.reason != "hits_exceed_at_bats" ||
			first.detail != nil || first.field != nil || first.eventID != nil || !bytes.Equal(first.payload, decode.Payload) {
			t.Errorf("dead letter 31/decode = %+v, want empty detail/field/event_id as NULL and payload %x", first, decode.Payload)
		}
		last := letters[2]
		if last.stage != "validate" || last.seq != "32" || last.stream != testStream || last.shard != testShard ||
			*last.detail != validate.Detail || *last.field != validate.Field || *last.eventID != validate.EventId ||
			!bytes.Equal(last.payload, validate.Payload) {
			t.Errorf("dead letter 32/validate = %+v, want %v", last, validate)
		}

		// An operator rewinds the shard (nothing committed, lease kept) and the records are
		// read again: their rejections are already there.
		if _, err := e.pool.Exec(t.Context(), `UPDATE `+testSchema+`.shard_checkpoint SET sequence_number = ''`); err != nil {
			t.Fatalf("rewind: %v", err)
		}
		assertCounts(t, mustLoad(t, e.store, req), counts{})
		if n := countRows(t, e.pool, "dead_letter"); n != 3 {
			t.Errorf("dead letters after replay = %d, want 3", n)
		}
	})
}

func TestCheckpointMismatchWritesNothing(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		mustLoad(t, e.store, request("", "100", newRow(1, "g1", 1, "evt-1", "100")))
		before := assertCheckpoint(t, e.store, "100", false)

		for _, expected := range []string{"", "50", "99"} {
			t.Run("expected="+expected, func(t *testing.T) {
				req := request(expected, "300", newRow(2, "g2", 1, "evt-2", "250"))
				req.Rejections = []*warehousev1.Rejection{newRejection("260", "decode")}
				_, err := e.store.Load(t.Context(), req)
				assertMismatch(t, err, "100", false)
			})
		}
		if n := countRows(t, e.pool, "fact_batting_game"); n != 1 {
			t.Errorf("fact rows = %d, want 1", n)
		}
		if n := countRows(t, e.pool, "dim_player"); n != 1 {
			t.Errorf("dim_player rows = %d, want 1", n)
		}
		if n := countRows(t, e.pool, "dead_letter"); n != 0 {
			t.Errorf("dead letters = %d, want 0", n)
		}
		after := assertCheckpoint(t, e.store, "100", false)
		if !after.GetUpdatedAt().AsTime().Equal(before.GetUpdatedAt().AsTime()) {
			t.Errorf("checkpoint updated_at moved from %v to %v", before.GetUpdatedAt().AsTime(), after.GetUpdatedAt().AsTime())
		}

		// A shard claimed but never committed, while the request expects a position.
		other := request("100", "200")
		other.ShardId = "shardId-000000000009"
		mustClaim(t, e.store, other.ShardId, testLeaseToken, testOwner)
		_, err := e.store.Load(t.Context(), other)
		var mismatch *warehouse.CheckpointMismatchError
		if !errors.As(err, &mismatch) {
			t.Fatalf("Load on an uncommitted shard with an expected position: error = %v, want a mismatch", err)
		}
		if mismatch.Stored.GetSequenceNumber() != "" || mismatch.Stored.GetShardId() != other.ShardId || mismatch.Stored.GetUpdatedAt() != nil {
			t.Errorf("stored checkpoint = %v, want an empty one for %s", mismatch.Stored, other.ShardId)
		}
	})
}

func TestConcurrentLoadsOfOneShardCommitOnce(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 4)
		mustLoad(t, e.store, request("", "10"))

		const consumers = 4
		errs := make([]error, consumers)
		var wg sync.WaitGroup
		for i := range consumers {
			wg.Go(func() {
				seq := fmt.Sprint(20 + i)
				_, errs[i] = e.store.Load(t.Context(), request("10", seq, newRow(int64(100+i), "g1", 1, "evt", seq)))
			})
		}
		wg.Wait()

		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, warehouse.ErrCheckpointMismatch):
				t.Errorf("consumer %d: %v, want success or a checkpoint mismatch", i, err)
			}
		}
		if won != 1 {
			t.Errorf("%d consumers committed from the same checkpoint, want exactly 1 (errors: %v)", won, errs)
		}
		if n := countRows(t, e.pool, "fact_batting_game"); n != 1 {
			t.Errorf("fact rows = %d, want 1: the losers' rows must be rolled back", n)
		}
	})
}

func TestGetCheckpoint(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		// Claimed (by newEnv) but nothing committed yet.
		none := assertCheckpoint(t, e.store, "", false)
		if none.GetUpdatedAt() != nil {
			t.Errorf("updated_at of a claimed shard with nothing committed = %v, want unset", none.GetUpdatedAt())
		}
		if none.GetLeaseToken() != testLeaseToken || none.GetOwner() != testOwner {
			t.Errorf("checkpoint of a claimed shard = %v, want lease token %d owned by %s", none, testLeaseToken, testOwner)
		}
		// Never claimed: no row at all.
		unclaimed, err := e.store.GetCheckpoint(t.Context(), testStream, "shardId-000000000077")
		if err != nil {
			t.Fatalf("GetCheckpoint of an unclaimed shard: %v", err)
		}
		if unclaimed.GetSequenceNumber() != "" || unclaimed.GetUpdatedAt() != nil || unclaimed.GetLeaseToken() != 0 ||
			unclaimed.GetOwner() != "" || unclaimed.GetShardId() != "shardId-000000000077" {
			t.Errorf("checkpoint of an unclaimed shard = %v, want an empty one", unclaimed)
		}

		started := time.Now()
		resp := mustLoad(t, e.store, request("", "12345678901234567890123456789012345678901234567890123456"))
		got := assertCheckpoint(t, e.store, "12345678901234567890123456789012345678901234567890123456", false)
		if got.GetLeaseToken() != testLeaseToken || got.GetOwner() != testOwner {
			t.Errorf("checkpoint after a load = %v, want lease token %d owned by %s", got, testLeaseToken, testOwner)
		}
		if !got.GetUpdatedAt().AsTime().Equal(resp.GetCheckpoint().GetUpdatedAt().AsTime()) {
			t.Errorf("GetCheckpoint updated_at %v differs from Load's %v", got.GetUpdatedAt().AsTime(), resp.GetCheckpoint().GetUpdatedAt().AsTime())
		}
		if at := got.GetUpdatedAt().AsTime(); at.Before(started.Add(-time.Minute)) || at.After(time.Now().Add(time.Minute)) {
			t.Errorf("updated_at = %v, want about now", at)
		}

		for _, tc := range []struct{ stream, shard, field string }{{"", testShard, "stream"}, {testStream, "", "shard_id"}} {
			_, err := e.store.GetCheckpoint(t.Context(), tc.stream, tc.shard)
			assertViolation(t, err, tc.field)
		}
	})
}

func TestShardEnd(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		mustLoad(t, e.store, request("", "100", newRow(1, "g1", 1, "evt-1", "90")))

		// The shard closed with nothing after 100: close it at the same position.
		closing := request("100", "100")
		closing.ShardEnd = true
		resp := mustLoad(t, e.store, closing)
		assertCounts(t, resp, counts{})
		if !resp.GetCheckpoint().GetShardEnd() || resp.GetCheckpoint().GetSequenceNumber() != "100" {
			t.Errorf("response checkpoint = %v, want 100 with shard_end", resp.GetCheckpoint())
		}
		assertCheckpoint(t, e.store, "100", true)

		// A closed shard is final: neither a redelivered close nor more data moves it.
		_, err := e.store.Load(t.Context(), closing)
		assertMismatch(t, err, "100", true)
		_, err = e.store.Load(t.Context(), request("100", "200", newRow(2, "g1", 1, "evt-2", "150")))
		assertMismatch(t, err, "100", true)
		assertCheckpoint(t, e.store, "100", true)

		// A last batch can carry data and close the shard at once.
		other := request("", "500", newRow(3, "g1", 1, "evt-3", "500"))
		other.ShardId, other.ShardEnd = "shardId-000000000002", true
		other.Rows[0].Position.ShardId = other.ShardId
		mustClaim(t, e.store, other.ShardId, testLeaseToken, testOwner)
		resp = mustLoad(t, e.store, other)
		assertCounts(t, resp, counts{inserted: 1})
		if !resp.GetCheckpoint().GetShardEnd() {
			t.Errorf("checkpoint of a closing batch = %v, want shard_end", resp.GetCheckpoint())
		}
	})
}

func TestBatchWithOnlyRejectionsAdvancesCheckpoint(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		req := request("", "7")
		req.Rejections = []*warehousev1.Rejection{newRejection("7", "decode")}
		assertCounts(t, mustLoad(t, e.store, req), counts{deadLettered: 1})
		assertCheckpoint(t, e.store, "7", false)
	})
}

func TestSequenceNumbersCompareAsNumbers(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		mustLoad(t, e.store, request("", "9"))
		// As text "10" < "9"; as numbers it is after, and "95" is not within (9, 10].
		mustLoad(t, e.store, request("9", "10", newRow(1, "g1", 1, "evt-1", "10")))
		_, err := e.store.Load(t.Context(), request("10", "11", newRow(2, "g1", 1, "evt-2", "95")))
		assertViolation(t, err, "rows[0].position.sequence_number")
		_, err = e.store.Load(t.Context(), request("10", "9"))
		assertViolation(t, err, "sequence_number")
		assertCheckpoint(t, e.store, "10", false)
	})
}

func assertViolation(t *testing.T, err error, field string) {
	t.Helper()
	if !errors.Is(err, warehouse.ErrInvalidRequest) {
		t.Fatalf("error = %v, want a validation error about %s", err, field)
	}
	var invalid *warehouse.ValidationError
	if !errors.As(err, &invalid) {
		t.Fatalf("error %v is not a *ValidationError", err)
	}
	for _, v := range invalid.Violations {
		if v.Field == field {
			return
		}
	}
	t.Errorf("violations = %+v, want one about %s", invalid.Violations, field)
}

func TestLoadRejectsInvalidRequests(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		mustLoad(t, e.store, request("", "100"))

		cases := []struct {
			name  string
			edit  func(*loadv1.LoadRequest)
			field string
		}{
			{"no stream", func(r *loadv1.LoadRequest) { r.Stream = "" }, "stream"},
			{"no lease token", func(r *loadv1.LoadRequest) { r.LeaseToken = 0 }, "lease_token"},
			{"negative lease token", func(r *loadv1.LoadRequest) { r.LeaseToken = -3 }, "lease_token"},
			{"no shard", func(r *loadv1.LoadRequest) { r.ShardId = "" }, "shard_id"},
			{"no sequence number", func(r *loadv1.LoadRequest) { r.SequenceNumber = "" }, "sequence_number"},
			{"nothing to commit", func(r *loadv1.LoadRequest) { r.SequenceNumber = "100"; r.Rows = nil }, "sequence_number"},
			{"moves back", func(r *loadv1.LoadRequest) { r.SequenceNumber = "99"; r.Rows = nil }, "sequence_number"},
			{"not digits", func(r *loadv1.LoadRequest) { r.SequenceNumber = "2e5" }, "sequence_number"},
			{"leading zero", func(r *loadv1.LoadRequest) { r.SequenceNumber = "0200" }, "sequence_number"},
			{"bad expected", func(r *loadv1.LoadRequest) { r.ExpectedSequenceNumber = "abc" }, "expected_sequence_number"},
			{"no player", func(r *loadv1.LoadRequest) { r.Rows[0].Player = nil }, "rows[0].player"},
			{"bad player id", func(r *loadv1.LoadRequest) { r.Rows[0].Player.MlbId = 0 }, "rows[0].player.mlb_id"},
			{"no game", func(r *loadv1.LoadRequest) { r.Rows[0].GameId = "" }, "rows[0].game_id"},
			{"no event", func(r *loadv1.LoadRequest) { r.Rows[0].EventId = "" }, "rows[0].event_id"},
			{"bad date", func(r *loadv1.LoadRequest) { r.Rows[0].GameDate = "2024-02-30" }, "rows[0].game_date"},
			{"negative stat", func(r *loadv1.LoadRequest) { r.Rows[0].GroundIntoDoublePlay = -1 }, "rows[0].ground_into_double_play"},
			{"season out of range", func(r *loadv1.LoadRequest) { r.Rows[0].Season = 70000 }, "rows[0].season"},
			{"row from another shard", func(r *loadv1.LoadRequest) { r.Rows[0].Position.ShardId = "shardId-x" }, "rows[0].position.shard_id"},
			{"row before the checkpoint", func(r *loadv1.LoadRequest) { r.Rows[0].Position.SequenceNumber = "100" }, "rows[0].position.sequence_number"},
			{"row after the batch", func(r *loadv1.LoadRequest) { r.Rows[0].Position.SequenceNumber = "201" }, "rows[0].position.sequence_number"},
			{"nil row", func(r *loadv1.LoadRequest) { r.Rows[0] = nil }, "rows[0]"},
			{"rejection without position", func(r *loadv1.LoadRequest) { r.Rejections[0].Position = nil }, "rejections[0].position"},
			{"rejection without stage", func(r *loadv1.LoadRequest) { r.Rejections[0].Stage = "" }, "rejections[0].stage"},
			{"rejection from another stream", func(r *loadv1.LoadRequest) { r.Rejections[0].Position.Stream = "x" }, "rejections[0].position.stream"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				req := request("100", "200", newRow(1, "g1", 1, "evt-1", "150"))
				req.Rejections = []*warehousev1.Rejection{newRejection("160", "decode")}
				tc.edit(req)
				_, err := e.store.Load(t.Context(), req)
				assertViolation(t, err, tc.field)
				if warehouse.IsTransient(err) {
					t.Errorf("IsTransient(validation error) = true")
				}
			})
		}
		assertCheckpoint(t, e.store, "100", false)
		if n := countRows(t, e.pool, "fact_batting_game") + countRows(t, e.pool, "dead_letter"); n != 0 {
			t.Errorf("%d rows written by invalid requests, want 0", n)
		}
	})
}

func TestDimPlayerKeepsTheLatestGame(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		team := func() string {
			t.Helper()
			var team string
			if err := e.pool.QueryRow(t.Context(), `SELECT team FROM `+testSchema+`.dim_player WHERE player_id = 5`).Scan(&team); err != nil {
				t.Fatalf("read team: %v", err)
			}
			return team
		}
		line := func(gameID, date, team, seq string) *warehousev1.BattingGameRow {
			row := newRow(5, gameID, 1, "evt-"+gameID, seq)
			row.GameDate, row.Player = date, &statsv1.Player{MlbId: 5, Name: "Traded Player", Team: team}
			return row
		}
		// In one batch, the later game wins whatever the order of the rows.
		mustLoad(t, e.store, request("", "20", line("g2", "2024-07-31", "NYY", "11"), line("g1", "2024-07-01", "BOS", "12")))
		if got := team(); got != "NYY" {
			t.Errorf("team = %s, want NYY (the later game)", got)
		}
		// A late line from before the trade does not bring the old team back.
		mustLoad(t, e.store, request("20", "30", line("g0", "2024-06-15", "BOS", "25")))
		if got := team(); got != "NYY" {
			t.Errorf("team after a late old game = %s, want NYY", got)
		}
		mustLoad(t, e.store, request("30", "40", line("g3", "2024-08-02", "LAD", "35")))
		if got := team(); got != "LAD" {
			t.Errorf("team after a newer game = %s, want LAD", got)
		}
	})
}

func TestDataErrorsArePermanent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	// A rejection with text PostgreSQL cannot hold is made storable, not refused (see
	// text_test.go); the CHECK constraints are the last line of defence behind validation.
	_, err := e.pool.Exec(t.Context(), `UPDATE `+testSchema+`.fact_batting_game SET hits = -1`)
	if err != nil {
		t.Fatalf("update of no rows: %v", err)
	}
	mustLoad(t, e.store, request("", "10", newRow(1, "g1", 1, "evt-1", "10")))
	_, err = e.pool.Exec(t.Context(), `UPDATE `+testSchema+`.fact_batting_game SET hits = -1`)
	if !warehouse.IsDataError(err) || warehouse.IsTransient(err) {
		t.Errorf("CHECK violation %v: IsDataError=%t IsTransient=%t, want permanent data error", err, warehouse.IsDataError(err), warehouse.IsTransient(err))
	}
}

func TestLockTimeoutIsTransient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	mustLoad(t, e.store, request("", "10"))

	// A store whose sessions give up on a lock after 100 ms.
	config := e.pool.Config()
	config.ConnConfig.RuntimeParams["lock_timeout"] = "100ms"
	impatient, err := pgxpool.NewWithConfig(t.Context(), config)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(impatient.Close)
	store, err := warehouse.NewStore(impatient, testSchema)
	if err != nil {
		t.Fatalf("store: %v", err)
	}

	release := holdCheckpointLock(t, e.pool)
	_, err = store.Load(t.Context(), request("10", "20", newRow(1, "g1", 1, "evt-1", "20")))
	release()
	if !warehouse.IsTransient(err) || warehouse.IsDataError(err) {
		t.Fatalf("Load blocked by a lock: %v, want a transient error (IsTransient=%t)", err, warehouse.IsTransient(err))
	}
	// Retrying the same batch once the lock is gone succeeds.
	assertCounts(t, mustLoad(t, store, request("10", "20", newRow(1, "g1", 1, "evt-1", "20"))), counts{inserted: 1})
}

func TestUnreachableDatabaseIsTransient(t *testing.T) {
	t.Parallel()
	// A port that was free a moment ago: nothing listens there.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := lis.Addr().String()
	if err := lis.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	pool, err := pgxpool.New(t.Context(), "postgres://postgres@"+addr+"/postgres?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	store, err := warehouse.NewStore(pool, testSchema)
	if err != nil {
		t.Fatalf("store: %v", err)
	}
	_, err = store.Load(t.Context(), request("", "1"))
	if !warehouse.IsTransient(err) {
		t.Errorf("Load against %s: %v, want a transient error", addr, err)
	}
	_, err = store.GetCheckpoint(t.Context(), testStream, testShard)
	if !warehouse.IsTransient(err) {
		t.Errorf("GetCheckpoint against %s: %v, want a transient error", addr, err)
	}
}

func TestErrorMessagesNameTheShard(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		mustLoad(t, e.store, request("", "100"))
		_, err := e.store.Load(t.Context(), request("5", "200"))
		if err == nil || !strings.Contains(err.Error(), testShard) || !strings.Contains(err.Error(), "100") {
			t.Errorf("mismatch error %q should name the shard and the stored position", err)
		}
	})
}
