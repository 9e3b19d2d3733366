package warehouse_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxscore-dev/boxscore/pkg/deadletter"
	statsv1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/stats/v1"
	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
	"github.com/boxscore-dev/boxscore/services/loader/internal/warehouse"
)

// storedSubject is the player and game of a dead letter as stored, by sequence number.
type storedSubject struct {
	stage   string
	player  *int64
	game    *string
	indexed bool
	payload []byte
}

func readSubjects(t *testing.T, e *env) map[string]storedSubject {
	t.Helper()
	rows, err := e.pool.Query(t.Context(), `SELECT sequence_number, stage, player_id, game_id, payload_indexed, payload
FROM `+testSchema+`.dead_letter ORDER BY id`)
	if err != nil {
		t.Fatalf("read dead letters: %v", err)
	}
	defer rows.Close()
	out := map[string]storedSubject{}
	for rows.Next() {
		var seq string
		var s storedSubject
		if err := rows.Scan(&seq, &s.stage, &s.player, &s.game, &s.indexed, &s.payload); err != nil {
			t.Fatalf("scan dead letter: %v", err)
		}
		out[seq] = s
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read dead letters: %v", err)
	}
	return out
}

// envelopeRejection is a transformer's rejection of an event as the shard-consumer sends
// it: the Kinesis record, unchanged, as payload.
func envelopeRejection(t *testing.T, seq string, player *statsv1.Player, gameID string) *warehousev1.Rejection {
	t.Helper()
	ev := &statsv1.StatEvent{EventId: "evt-" + seq, Version: 1, Player: player, Game: &statsv1.Game{GameId: gameID, Date: "2024-04-01"}}
	record, err := statevent.EncodeEnvelope(ev, time.Date(2024, 4, 1, 23, 0, 0, 0, time.UTC), nil)
	if err != nil {
		t.Fatalf("encode envelope: %v", err)
	}
	return &warehousev1.Rejection{
		Position: position(seq), Stage: "validate", Reason: "hits_exceed_at_bats", Detail: "hits 5 > at_bats 4",
		Field: "batting.hits", EventId: ev.GetEventId(), EventVersion: 1, Payload: record,
	}
}

// Every dead letter carries its player and game from the moment the loader commits it,
// whichever way it was made (a transformer's rejection sent by the consumer, a row the
// database refused, a row refused for an overlong value), and is marked indexed, so SQL and
// `boxscore dlq list --player` find it without the CLI decoding anything. What is stored
// is what the shared rule (deadletter.DecodePayload) reads from the stored payload.
func TestDeadLettersCarryTheirPlayerAndGame(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	addHitsCeiling(t, e.pool)

	refused := newRow(605141, "G-refused", 2, "evt-refused", "4")
	refused.Hits = 25 // the CHECK refuses it: sqlstate_23514
	overlong := newRow(592450, strings.Repeat("g", 3000), 1, "evt-overlong", "5")
	clean := newRow(1, "G-clean", 1, "evt-clean", "6")
	clean.Hits = 3
	req := request("", "9", refused, overlong, clean)
	req.Rejections = []*warehousev1.Rejection{
		envelopeRejection(t, "1", &statsv1.Player{MlbId: 660271, Name: "Shohei Ohtani"}, "G-747"),
		// A protobuf string may hold NUL, which PostgreSQL text cannot: it must not fail the batch.
		envelopeRejection(t, "2", &statsv1.Player{MlbId: 545361}, "G\x00nul"),
		// An undecodable record: neither player nor game.
		newRejection("3", "decode"),
		// An event without a player.
		envelopeRejection(t, "7", nil, "G-noplayer"),
	}

	assertCounts(t, mustLoad(t, e.store, req), counts{inserted: 1, deadLettered: 6})
	got := readSubjects(t, e)
	for _, want := range []struct {
		seq    string
		player int64 // 0: NULL
		game   string
	}{
		{"1", 660271, "G-747"},
		{"2", 545361, "G\uFFFDnul"},
		{"3", 0, ""},
		{"4", 605141, "G-refused"},
		{"5", 592450, ""}, // checked below: the game id, bounded
		{"7", 0, "G-noplayer"},
	} {
		s, ok := got[want.seq]
		if !ok {
			t.Errorf("no dead letter at %s", want.seq)
			continue
		}
		if !s.indexed {
			t.Errorf("dead letter at %s: payload_indexed false: the CLI would decode it again", want.seq)
		}
		var player int64
		if s.player != nil {
			player = *s.player
		}
		if player != want.player || (want.player == 0) != (s.player == nil) {
			t.Errorf("dead letter at %s: player_id %s, want %d (0: NULL)", want.seq, describeInt(s.player), want.player)
		}
		if want.seq == "5" {
			if s.game == nil || !strings.HasPrefix(*s.game, "ggg") || len(*s.game) > warehouse.MaxKeyText {
				t.Errorf("overlong row's dead letter: game_id of %d bytes, want the game id cut to at most %d", len(deref(s.game)), warehouse.MaxKeyText)
			}
			continue
		}
		if deref(s.game) != want.game && (want.game != "" || s.game != nil) {
			t.Errorf("dead letter at %s: game_id %q, want %q (empty: NULL)", want.seq, deref(s.game), want.game)
		}
		// The same rule as the CLI's, read from the stored payload.
		sub := deadletter.DecodePayload(s.stage, s.payload).Subject()
		if sub.HasPlayer != (s.player != nil) || sub.PlayerID != player || sub.GameID != want.game {
			t.Errorf("dead letter at %s: stored (%s, %q), the payload decodes to %+v", want.seq, describeInt(s.player), deref(s.game), sub)
		}
	}

	// The index the CLI's --player uses finds them.
	var n int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM `+testSchema+`.dead_letter WHERE player_id = ANY($1::bigint[])`,
		[]int64{660271, 605141}).Scan(&n); err != nil {
		t.Fatalf("count by player: %v", err)
	}
	if n != 2 {
		t.Errorf("dead letters of players 660271 and 605141 = %d, want 2", n)
	}
}

func describeInt(p *int64) string {
	if p == nil {
		return "NULL"
	}
	return strconv.FormatInt(*p, 10)
}
