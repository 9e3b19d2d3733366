package warehouse_test

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/services/loader/internal/warehouse"
)

// newTombstone is a retraction row of (player, game) as the transformer makes it.
func newTombstone(playerID int64, gameID string, version int64, eventID, seq string) *warehousev1.BattingGameRow {
	return &warehousev1.BattingGameRow{
		EventId: eventID, Version: version, Player: &statsv1.Player{MlbId: playerID}, GameId: gameID,
		Position: position(seq), Producer: "ops", Retraction: &statsv1.Retraction{Reason: "reported for the wrong player"},
	}
}

// storedTombstone is a batting_game_retraction row as read back.
type storedTombstone struct {
	Version                 int64
	EventID, Reason         string
	Producer                *string
	RemovedEventID          *string
	RemovedVersion          *int64
	SourceSequenceNumber    *string
	RetractedAtIsSet, Found bool
}

func readTombstone(t *testing.T, pool *pgxpool.Pool, playerID int64, gameID string) storedTombstone {
	t.Helper()
	var s storedTombstone
	err := pool.QueryRow(t.Context(), `SELECT version, event_id, reason, producer, removed_event_id, removed_version,
		source_sequence_number, retracted_at IS NOT NULL FROM `+testSchema+`.batting_game_retraction WHERE player_id = $1 AND game_id = $2`,
		playerID, gameID).Scan(&s.Version, &s.EventID, &s.Reason, &s.Producer, &s.RemovedEventID, &s.RemovedVersion,
		&s.SourceSequenceNumber, &s.RetractedAtIsSet)
	if errors.Is(err, pgx.ErrNoRows) {
		return s
	}
	if err != nil {
		t.Fatalf("read tombstone: %v", err)
	}
	s.Found = true
	return s
}

// factVersion returns the stored line's version and event id, or found false.
func factVersion(t *testing.T, pool *pgxpool.Pool, playerID int64, gameID string) (version int64, eventID string, found bool) {
	t.Helper()
	err := pool.QueryRow(t.Context(), `SELECT version, event_id FROM `+testSchema+`.fact_batting_game WHERE player_id = $1 AND game_id = $2`,
		playerID, gameID).Scan(&version, &eventID)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", false
	}
	if err != nil {
		t.Fatalf("read fact: %v", err)
	}
	return version, eventID, true
}

func seasonGames(t *testing.T, pool *pgxpool.Pool, playerID int64) int {
	t.Helper()
	var games int
	err := pool.QueryRow(t.Context(), `SELECT COALESCE(sum(games), 0) FROM `+testSchema+`.batting_season WHERE player_id = $1`, playerID).Scan(&games)
	if err != nil {
		t.Fatalf("read batting_season: %v", err)
	}
	return games
}

// The life of a retracted line: removed from the fact table and the views; a stale line
// after it and the tombstone's redelivery change nothing; a newer line brings it back.
func TestRetractionRemovesLineExactlyOnce(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		line := newRow(660271, "G1", 3, "evt-line-v3", "101")
		line.Producer = "demo"
		other := newRow(660271, "G2", 1, "evt-other", "102")
		assertCounts(t, mustLoad(t, e.store, request("", "102", line, other)), counts{inserted: 2})
		if games := seasonGames(t, e.pool, 660271); games != 2 {
			t.Fatalf("batting_season games = %d before the retraction, want 2", games)
		}

		// The tombstone, above the line: the line goes, the tombstone records what it removed.
		tomb := newTombstone(660271, "G1", 4, "evt-retract-v4", "103")
		assertCounts(t, mustLoad(t, e.store, request("102", "103", tomb)), counts{updated: 1})
		if _, _, found := factVersion(t, e.pool, 660271, "G1"); found {
			t.Fatal("the retracted line is still in fact_batting_game")
		}
		if games := seasonGames(t, e.pool, 660271); games != 1 {
			t.Errorf("batting_season games = %d after the retraction, want 1 (the view follows the fact table)", games)
		}
		got := readTombstone(t, e.pool, 660271, "G1")
		if !got.Found || got.Version != 4 || got.EventID != "evt-retract-v4" || got.Reason != "reported for the wrong player" ||
			got.Producer == nil || *got.Producer != "ops" || got.RemovedEventID == nil || *got.RemovedEventID != "evt-line-v3" ||
			got.RemovedVersion == nil || *got.RemovedVersion != 3 || got.SourceSequenceNumber == nil || *got.SourceSequenceNumber != "103" ||
			!got.RetractedAtIsSet {
			t.Errorf("tombstone = %+v", got)
		}

		// The same tombstone again (a producer's retry at another position): nothing changes.
		again := newTombstone(660271, "G1", 4, "evt-retract-v4", "104")
		assertCounts(t, mustLoad(t, e.store, request("103", "104", again)), counts{unchanged: 1})
		if got := readTombstone(t, e.pool, 660271, "G1"); got.SourceSequenceNumber == nil || *got.SourceSequenceNumber != "103" {
			t.Errorf("a redelivered tombstone rewrote the stored one: %+v", got)
		}

		// A line at or below the tombstone's version, late or replayed: not stored.
		stale := newRow(660271, "G1", 3, "evt-line-v3", "105")
		staleSameVersion := newRow(660271, "G1", 4, "evt-line-v4-aaa", "106") // "evt-line..." < "evt-retract..." byte-wise
		assertCounts(t, mustLoad(t, e.store, request("104", "105", stale)), counts{unchanged: 1})
		assertCounts(t, mustLoad(t, e.store, request("105", "106", staleSameVersion)), counts{unchanged: 1})
		if _, _, found := factVersion(t, e.pool, 660271, "G1"); found {
			t.Fatal("a stale line brought the retracted row back")
		}

		// A newer line brings the row back; the tombstone stays as the record.
		newer := newRow(660271, "G1", 5, "evt-line-v5", "107")
		assertCounts(t, mustLoad(t, e.store, request("106", "107", newer)), counts{inserted: 1})
		if v, id, found := factVersion(t, e.pool, 660271, "G1"); !found || v != 5 || id != "evt-line-v5" {
			t.Errorf("fact after the newer line = (%d, %q, %v), want (5, evt-line-v5, true)", v, id, found)
		}
		if got := readTombstone(t, e.pool, 660271, "G1"); !got.Found || got.Version != 4 {
			t.Errorf("tombstone after the newer line = %+v, want kept at version 4", got)
		}
		if games := seasonGames(t, e.pool, 660271); games != 2 {
			t.Errorf("batting_season games = %d after the newer line, want 2", games)
		}

		// The old tombstone redelivered once more: below the line now, nothing changes.
		assertCounts(t, mustLoad(t, e.store, request("107", "108", newTombstone(660271, "G1", 4, "evt-retract-v4", "108"))), counts{unchanged: 1})
		if _, _, found := factVersion(t, e.pool, 660271, "G1"); !found {
			t.Error("an old tombstone removed a newer line")
		}
	})
}

// A tombstone older than the stored line does nothing, and is not recorded.
func TestRetractionOlderThanLineDoesNothing(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		mustLoad(t, e.store, request("", "101", newRow(1, "G1", 5, "evt-v5", "101")))
		assertCounts(t, mustLoad(t, e.store, request("101", "102", newTombstone(1, "G1", 4, "evt-r4", "102"))), counts{unchanged: 1})
		if v, _, found := factVersion(t, e.pool, 1, "G1"); !found || v != 5 {
			t.Errorf("line after an older tombstone: version %d found %v, want 5 kept", v, found)
		}
		if got := readTombstone(t, e.pool, 1, "G1"); got.Found {
			t.Errorf("an ineffective tombstone was recorded: %+v", got)
		}
	})
}

// A tombstone before any line is recorded and keeps older lines out; a newer tombstone
// replaces it and keeps what the first removed.
func TestRetractionBeforeLineAndNewerTombstone(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		assertCounts(t, mustLoad(t, e.store, request("", "101", newTombstone(1, "G1", 2, "evt-r2", "101"))), counts{inserted: 1})
		assertCounts(t, mustLoad(t, e.store, request("101", "102", newRow(1, "G1", 1, "evt-v1", "102"))), counts{unchanged: 1})
		if _, _, found := factVersion(t, e.pool, 1, "G1"); found {
			t.Fatal("a line older than the tombstone was stored")
		}
		mustLoad(t, e.store, request("102", "103", newRow(1, "G1", 3, "evt-v3", "103")))
		assertCounts(t, mustLoad(t, e.store, request("103", "104", newTombstone(1, "G1", 4, "evt-r4", "104"))), counts{updated: 1})
		got := readTombstone(t, e.pool, 1, "G1")
		if got.Version != 4 || got.RemovedEventID == nil || *got.RemovedEventID != "evt-v3" {
			t.Errorf("tombstone = %+v, want version 4 having removed evt-v3", got)
		}
		// Replaced again with nothing left to remove: the last removal is kept.
		assertCounts(t, mustLoad(t, e.store, request("104", "105", newTombstone(1, "G1", 6, "evt-r6", "105"))), counts{updated: 1})
		if got := readTombstone(t, e.pool, 1, "G1"); got.Version != 6 || got.RemovedEventID == nil || *got.RemovedEventID != "evt-v3" {
			t.Errorf("tombstone = %+v, want version 6 keeping evt-v3 as removed", got)
		}
	})
}

// In one batch only the greatest (version, event_id) of a key's lines and tombstones
// counts, whatever their order.
func TestRetractionAndLineInOneBatch(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		resp := mustLoad(t, e.store, request("", "104",
			newRow(1, "G1", 1, "evt-v1", "101"), newTombstone(1, "G1", 2, "evt-r2", "102"),
			newTombstone(2, "G2", 1, "evt-r1", "103"), newRow(2, "G2", 2, "evt-v2", "104")))
		assertCounts(t, resp, counts{inserted: 2, unchanged: 2})
		if _, _, found := factVersion(t, e.pool, 1, "G1"); found {
			t.Error("player 1: the line below the batch's tombstone was stored")
		}
		if !readTombstone(t, e.pool, 1, "G1").Found {
			t.Error("player 1: the tombstone was not recorded")
		}
		if v, _, found := factVersion(t, e.pool, 2, "G2"); !found || v != 2 {
			t.Error("player 2: the line above the batch's tombstone was not stored")
		}
		if readTombstone(t, e.pool, 2, "G2").Found {
			t.Error("player 2: a tombstone below the batch's line was recorded")
		}
	})
}

// The producer is stored on fact rows and dead letters; a retraction holding text the table
// cannot store is dead-lettered, not sent.
func TestProducerColumnsAndUnstorableRetraction(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		line := newRow(1, "G1", 1, "evt-1", "101")
		line.Producer = "demo"
		anonymous := newRow(2, "G1", 1, "evt-2", "102")
		rejection := newRejection("103", "validate")
		rejection.Producer = "replay-bot"
		bad := newTombstone(3, "G1", 2, "evt-r", "104")
		bad.Retraction.Reason = "nul \x00 inside"
		req := request("", "104", line, anonymous, bad)
		req.Rejections = append(req.Rejections, rejection)
		resp := mustLoad(t, e.store, req)
		assertCounts(t, resp, counts{inserted: 2, deadLettered: 2})

		producers := map[int64]*string{}
		rows, err := e.pool.Query(t.Context(), `SELECT player_id, producer FROM `+testSchema+`.fact_batting_game`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int64
			var p *string
			if err := rows.Scan(&id, &p); err != nil {
				t.Fatal(err)
			}
			producers[id] = p
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if p := producers[1]; p == nil || *p != "demo" {
			t.Errorf("producer of player 1 = %v, want demo", p)
		}
		if p, ok := producers[2]; !ok || p != nil {
			t.Errorf("producer of player 2 = %v (found %v), want NULL", p, ok)
		}
		letters := map[string]*string{}
		dl, err := e.pool.Query(t.Context(), `SELECT reason, producer FROM `+testSchema+`.dead_letter`)
		if err != nil {
			t.Fatal(err)
		}
		for dl.Next() {
			var reason string
			var p *string
			if err := dl.Scan(&reason, &p); err != nil {
				t.Fatal(err)
			}
			letters[reason] = p
		}
		if err := dl.Err(); err != nil {
			t.Fatal(err)
		}
		if p := letters["hits_exceed_at_bats"]; p == nil || *p != "replay-bot" {
			t.Errorf("rejection's dead letter producer = %v, want replay-bot", p)
		}
		if p, ok := letters[warehouse.ReasonUnstorableText]; !ok || p == nil || *p != "ops" {
			t.Errorf("unstorable retraction: dead letter %v found %v, want one with producer ops", p, ok)
		}
		if readTombstone(t, e.pool, 3, "G1").Found {
			t.Error("the unstorable retraction was recorded")
		}
	})
}
