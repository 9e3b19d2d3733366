package warehouse_test

import (
	"context"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/services/loader/internal/warehouse"
)

// statementCounter is a pgx tracer counting what the store sends to PostgreSQL: upsert
// attempts (each opens the savepoint), COPYs and pipelines.
type statementCounter struct {
	savepoints, copies, batches atomic.Int64
}

func (c *statementCounter) reset() {
	c.savepoints.Store(0)
	c.copies.Store(0)
	c.batches.Store(0)
}

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if strings.HasPrefix(strings.TrimSpace(data.SQL), "SAVEPOINT ") {
		c.savepoints.Add(1)
	}
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *statementCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.batches.Add(1)
	return ctx
}

func (c *statementCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (c *statementCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (c *statementCounter) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	c.copies.Add(1)
	return ctx
}

func (c *statementCounter) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

// addHitsCeiling adds a CHECK the Go validation does not know about. The loader validates
// what it can (no negative stats, smallint ranges), so a row that passes it and is still
// refused by PostgreSQL needs a rule only the database enforces, as a later migration or a
// DBA could add. The constraint is named so the dead letter's field can be asserted.
func addHitsCeiling(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(t.Context(),
		`ALTER TABLE `+testSchema+`.fact_batting_game ADD CONSTRAINT test_hits_below_20 CHECK (hits < 20)`); err != nil {
		t.Fatalf("add CHECK: %v", err)
	}
}

// cleanRows returns n rows, players 1..n in game g1, at sequence numbers 1..n, that pass
// the test CHECK.
func cleanRows(n int) []*warehousev1.BattingGameRow {
	rows := make([]*warehousev1.BattingGameRow, n)
	for i := range rows {
		seq := strconv.Itoa(i + 1)
		row := newRow(int64(i+1), "g1", 1, "evt-"+seq, seq)
		row.Hits = 3
		rows[i] = row
	}
	return rows
}

// maxAttempts is the bound on upsert attempts for k bad rows among n: the whole batch, then
// two halves per level on the path to each bad row.
func maxAttempts(n, k int) int64 {
	return int64(k*2*int(math.Ceil(math.Log2(float64(n)))) + 4)
}

func assertLoadLetter(t *testing.T, letter storedLetter, row *warehousev1.BattingGameRow, reason, field, detail string) {
	t.Helper()
	if letter.stage != warehouse.StageLoad || letter.reason != reason || letter.field == nil || *letter.field != field ||
		letter.detail == nil || !strings.Contains(*letter.detail, detail) ||
		letter.stream != testStream || letter.shard != testShard || letter.seq != row.GetPosition().GetSequenceNumber() {
		t.Errorf("dead letter = %+v (detail %q field %q), want stage load, %s, field %s, detail ~%q at %s",
			letter, deref(letter.detail), deref(letter.field), reason, field, detail, row.GetPosition().GetSequenceNumber())
	}
	var sent warehousev1.BattingGameRow
	if err := protojson.Unmarshal(letter.payload, &sent); err != nil {
		t.Fatalf("dead letter payload %q is not a protojson BattingGameRow: %v", letter.payload, err)
	}
	if !proto.Equal(&sent, row) {
		t.Errorf("dead letter payload = %v, want the row as sent: %v", &sent, row)
	}
}

func deref(p *string) string {
	if p == nil {
		return "<NULL>"
	}
	return *p
}

func TestOneBadRowAmongTenThousandIsIsolated(t *testing.T) {
	t.Parallel()
	counter := &statementCounter{}
	e := newEnvWithTracer(t, 1, counter)
	addHitsCeiling(t, e.pool)

	const n = 10_000
	rows := cleanRows(n)
	bad := rows[6543]
	bad.Hits = 25
	counter.reset()
	resp := mustLoad(t, e.store, request("", strconv.Itoa(n), rows...))

	assertCounts(t, resp, counts{inserted: n - 1, deadLettered: 1})
	if n := countRows(t, e.pool, "fact_batting_game"); n != 9_999 {
		t.Errorf("fact rows = %d, want 9999", n)
	}
	var badStored int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM `+testSchema+`.fact_batting_game WHERE player_id = $1`,
		bad.GetPlayer().GetMlbId()).Scan(&badStored); err != nil {
		t.Fatalf("look for the bad row: %v", err)
	}
	if badStored != 0 {
		t.Errorf("the refused row is in the fact table")
	}
	assertFact(t, e.pool, rows[0])
	assertFact(t, e.pool, rows[n-1])
	letters := readLetters(t, e.pool)
	if len(letters) != 1 {
		t.Fatalf("dead letters = %d, want 1: %+v", len(letters), letters)
	}
	assertLoadLetter(t, letters[0], bad, "sqlstate_23514", "test_hits_below_20", "test_hits_below_20")
	assertCheckpoint(t, e.store, strconv.Itoa(n), false)

	attempts := counter.savepoints.Load()
	if limit := maxAttempts(n, 1); attempts < 2 || attempts > limit {
		t.Errorf("upsert attempts = %d, want between 2 and %d (logarithmic in %d rows)", attempts, limit, n)
	}
	// The pipelined attempt (no savepoint) is refused first, then the step-by-step flow
	// bisects.
	if copies := counter.copies.Load(); copies != attempts+1 {
		t.Errorf("COPYs = %d, want one per attempt and the pipelined one (%d)", copies, attempts+1)
	}
	t.Logf("one bad row among %d: %d upsert attempts", n, attempts)

	// When nothing is wrong, a batch costs one attempt, pipelined: no savepoint, one COPY,
	// one pipeline.
	counter.reset()
	more := newRow(1, "g2", 1, "evt-more", strconv.Itoa(n+1))
	more.Hits = 1
	assertCounts(t, mustLoad(t, e.store, request(strconv.Itoa(n), strconv.Itoa(n+1), more)), counts{inserted: 1})
	if s, c, b := counter.savepoints.Load(), counter.copies.Load(), counter.batches.Load(); s != 0 || c != 1 || b != 1 {
		t.Errorf("clean batch: %d savepoints, %d COPYs, %d pipelines, want 0, 1, 1", s, c, b)
	}
}

func TestTwoBadRowsFarApartAreBothIsolated(t *testing.T) {
	t.Parallel()
	counter := &statementCounter{}
	e := newEnvWithTracer(t, 1, counter)
	addHitsCeiling(t, e.pool)

	const n = 2_000
	rows := cleanRows(n)
	refusedByCheck := rows[3]
	refusedByCheck.Hits = 99
	// Refused by the COPY itself: PostgreSQL text cannot hold NUL (SQLSTATE 22021), a value
	// the loader's validation lets through. It sits in event_id, so the dead letter's own
	// event_id must be made storable.
	refusedByCopy := rows[1_990]
	refusedByCopy.EventId = "evt-\x00-1991"
	counter.reset()
	resp := mustLoad(t, e.store, request("", strconv.Itoa(n), rows...))

	assertCounts(t, resp, counts{inserted: n - 2, deadLettered: 2})
	if got := countRows(t, e.pool, "fact_batting_game"); got != n-2 {
		t.Errorf("fact rows = %d, want %d", got, n-2)
	}
	letters := readLetters(t, e.pool)
	if len(letters) != 2 {
		t.Fatalf("dead letters = %d, want 2: %+v", len(letters), letters)
	}
	byReason := map[string]storedLetter{}
	for _, l := range letters {
		byReason[l.reason] = l
	}
	assertLoadLetter(t, byReason["sqlstate_23514"], refusedByCheck, "sqlstate_23514", "test_hits_below_20", "violates check constraint")
	assertLoadLetter(t, byReason["sqlstate_22021"], refusedByCopy, "sqlstate_22021", "event_id", "0x00")
	if got := deref(byReason["sqlstate_22021"].eventID); got != "evt-\uFFFD-1991" {
		t.Errorf("dead letter event_id = %q, want the NUL replaced", got)
	}
	assertCheckpoint(t, e.store, strconv.Itoa(n), false)
	if attempts, limit := counter.savepoints.Load(), maxAttempts(n, 2); attempts > limit {
		t.Errorf("upsert attempts = %d, want at most %d", attempts, limit)
	}

	// Redelivered after a rewind: the rows change nothing and the dead letters are not
	// written twice.
	if _, err := e.pool.Exec(t.Context(), `UPDATE `+testSchema+`.shard_checkpoint SET sequence_number = ''`); err != nil {
		t.Fatalf("rewind: %v", err)
	}
	assertCounts(t, mustLoad(t, e.store, request("", strconv.Itoa(n), rows...)), counts{unchanged: n - 2})
	if got := countRows(t, e.pool, "dead_letter"); got != 2 {
		t.Errorf("dead letters after redelivery = %d, want 2", got)
	}
}

func TestTransientFailureDuringBisectionCommitsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	addHitsCeiling(t, e.pool)
	const n = 500
	rows := cleanRows(n)
	// The last key is already stored; another session will hold its row lock.
	locked := proto.Clone(rows[n-1]).(*warehousev1.BattingGameRow)
	locked.Position.SequenceNumber = "1"
	first := mustLoad(t, e.store, request("", "1", locked))
	rows[n-1].Version = 2
	for _, row := range rows {
		row.Position.SequenceNumber = strconv.Itoa(mustAtoi(t, row.Position.SequenceNumber) + 1)
	}
	rows[1].Hits = 30 // refused: the batch is bisected

	// A store whose sessions give up on a lock after 200 ms: the lock_timeout (55P03) is
	// transient.
	config := e.pool.Config()
	config.ConnConfig.RuntimeParams["lock_timeout"] = "200ms"
	counter := &statementCounter{}
	config.ConnConfig.Tracer = counter
	impatient, err := pgxpool.NewWithConfig(t.Context(), config)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(impatient.Close)
	store, err := warehouse.NewStore(impatient, testSchema)
	if err != nil {
		t.Fatalf("store: %v", err)
	}

	ctx := context.WithoutCancel(t.Context())
	holder, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, err := holder.Exec(ctx, `SELECT 1 FROM `+testSchema+`.fact_batting_game WHERE player_id = $1 FOR UPDATE`,
		locked.GetPlayer().GetMlbId()); err != nil {
		t.Fatalf("lock fact row: %v", err)
	}
	req := request("1", strconv.Itoa(n+1), rows...)
	_, err = store.Load(t.Context(), req)
	if rbErr := holder.Rollback(ctx); rbErr != nil {
		t.Fatalf("release lock: %v", rbErr)
	}
	if !warehouse.IsTransient(err) || warehouse.IsDataError(err) {
		t.Fatalf("Load blocked during bisection: %v, want a transient error", err)
	}
	// The whole batch was refused for the bad row first, so the timeout came from a half:
	// the failure did happen during bisection, and stopped it.
	if attempts := counter.savepoints.Load(); attempts < 3 {
		t.Errorf("upsert attempts before the timeout = %d, want the bisection to have started (>= 3)", attempts)
	}
	// Nothing committed: the good half written before the timeout, the isolated row's dead
	// letter and the checkpoint were all rolled back.
	if got := countRows(t, e.pool, "fact_batting_game"); got != 1 {
		t.Errorf("fact rows = %d, want 1 (only the earlier load)", got)
	}
	if got := countRows(t, e.pool, "dead_letter"); got != 0 {
		t.Errorf("dead letters = %d, want 0: a transient failure is never dead-lettered", got)
	}
	cp := assertCheckpoint(t, e.store, "1", false)
	if !cp.GetUpdatedAt().AsTime().Equal(first.GetCheckpoint().GetUpdatedAt().AsTime()) {
		t.Errorf("checkpoint updated_at moved")
	}

	// Retried once the lock is gone, the same batch commits with its one dead letter.
	assertCounts(t, mustLoad(t, store, req), counts{inserted: n - 2, updated: 1, deadLettered: 1})
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("atoi %q: %v", s, err)
	}
	return n
}

// TestDimPlayerAfterBisectionTakesTheLatestWrittenGame: when a batch is bisected, dim_player
// is written from the rows written across all the parts, as for a batch taken whole: the
// latest game of the player among them (here the later game number of one day, which a
// part written alone would lose to the earlier one: the stored rule compares dates only),
// and nothing from the refused row's player.
func TestDimPlayerAfterBisectionTakesTheLatestWrittenGame(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	addHitsCeiling(t, e.pool)

	line := func(playerID int64, gameID string, gameNumber int32, team, seq string) *warehousev1.BattingGameRow {
		row := newRow(playerID, gameID, 1, "evt-"+seq, seq)
		row.Hits, row.GameNumber = 3, gameNumber
		row.Player = &statsv1.Player{MlbId: playerID, Name: "Player " + team, Team: team}
		return row
	}
	// In key order (5, a), (5, b), (7, c): the bad row makes the upsert split them into
	// [(5, a)] and [(5, b), (7, c)], then [(5, b)] and [(7, c)].
	secondGame := line(5, "a", 2, "NYY", "1")
	firstGame := line(5, "b", 1, "BOS", "2")
	refused := line(7, "c", 1, "SEA", "3")
	refused.Hits = 25
	resp := mustLoad(t, e.store, request("", "3", refused, firstGame, secondGame))
	assertCounts(t, resp, counts{inserted: 2, deadLettered: 1})

	var team string
	if err := e.pool.QueryRow(t.Context(), `SELECT team FROM `+testSchema+`.dim_player WHERE player_id = 5`).Scan(&team); err != nil {
		t.Fatalf("read team: %v", err)
	}
	if team != "NYY" {
		t.Errorf("team = %s, want NYY (game 2 of the day)", team)
	}
	if n := countRows(t, e.pool, "dim_player"); n != 1 {
		t.Errorf("dim_player rows = %d, want 1 (not the refused row's player)", n)
	}
}
