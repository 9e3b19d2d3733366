package warehouse_test

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	warehousev1 "github.com/boxscore-dev/boxscore/pkg/gen/boxscore/warehouse/v1"
	"github.com/boxscore-dev/boxscore/services/loader/internal/warehouse"
)

// letterWithVersion is a dead letter as stored, with its event version.
type letterWithVersion struct {
	stage, reason, seq     string
	detail, field, eventID *string
	version                *int64
	payload                []byte
}

func readLettersWithVersion(t *testing.T, e *env) []letterWithVersion {
	t.Helper()
	rows, err := e.pool.Query(t.Context(), `
		SELECT stage, reason, sequence_number, detail, field, event_id, event_version, payload
		FROM `+testSchema+`.dead_letter ORDER BY id`)
	if err != nil {
		t.Fatalf("read dead letters: %v", err)
	}
	defer rows.Close()
	var letters []letterWithVersion
	for rows.Next() {
		var l letterWithVersion
		if err := rows.Scan(&l.stage, &l.reason, &l.seq, &l.detail, &l.field, &l.eventID, &l.version, &l.payload); err != nil {
			t.Fatalf("scan dead letter: %v", err)
		}
		letters = append(letters, l)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read dead letters: %v", err)
	}
	return letters
}

func TestRejectionWithUnstorableTextIsDeadLettered(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		// What a crafted record yields: an envelope event id with a NUL, a detail quoting it and
		// bytes that are not UTF-8 (a direct caller can send them; gRPC would not).
		rejection := newRejection("9", "validate")
		rejection.EventId = "evt-\x00-9"
		rejection.Detail = "event id evt-\x00-9 differs from \xff\xfe"
		rejection.Field = "eventId\x00"
		rejection.EventVersion = 3
		rejection.Payload = []byte("\x00\xff raw \x00 record")
		req := request("", "10", newRow(1, "g1", 1, "evt-1", "10"))
		req.Rejections = []*warehousev1.Rejection{rejection}

		assertCounts(t, mustLoad(t, e.store, req), counts{inserted: 1, deadLettered: 1})
		assertCheckpoint(t, e.store, "10", false)
		letters := readLettersWithVersion(t, e)
		if len(letters) != 1 {
			t.Fatalf("dead letters = %d, want 1", len(letters))
		}
		l := letters[0]
		if got := deref(l.eventID); got != "evt-\uFFFD-9" {
			t.Errorf("event_id = %q, want the NUL replaced", got)
		}
		if got := deref(l.detail); got != "event id evt-\uFFFD-9 differs from \uFFFD" {
			t.Errorf("detail = %q, want NUL and invalid UTF-8 replaced", got)
		}
		if got := deref(l.field); got != "eventId\uFFFD" {
			t.Errorf("field = %q, want the NUL replaced", got)
		}
		if !bytes.Equal(l.payload, rejection.Payload) {
			t.Errorf("payload = %q, want the record's bytes unchanged %q", l.payload, rejection.Payload)
		}
		// The id is not the event's verbatim: the letter must not claim to be that event's.
		if l.version != nil {
			t.Errorf("event_version = %d, want NULL for an event id that had to be changed", *l.version)
		}
	})
}

func TestRejectionsWithAdversarialContentAlwaysCommit(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		nul := strings.Repeat("\x00", 300)
		invalid := "\xff\xc3(\xed\xa0\x80" // stray byte, truncated sequence, surrogate
		huge := strings.Repeat("x\x00\xff", 1<<20/3+1)
		var rejections []*warehousev1.Rejection
		for i, text := range []string{nul, invalid, huge, nul + invalid + huge} {
			seq := string(rune('1' + i))
			rejections = append(rejections, &warehousev1.Rejection{
				Position:     position(seq),
				Stage:        "validate" + text,
				Reason:       "invalid_text" + text,
				Detail:       text,
				Field:        text,
				EventId:      text,
				EventVersion: 1,
				Payload:      []byte(text),
			})
		}
		req := request("", "9")
		req.Rejections = rejections

		assertCounts(t, mustLoad(t, e.store, req), counts{deadLettered: int32(len(rejections))})
		assertCheckpoint(t, e.store, "9", false)
		letters := readLettersWithVersion(t, e)
		if len(letters) != len(rejections) {
			t.Fatalf("dead letters = %d, want %d", len(letters), len(rejections))
		}
		for i, l := range letters {
			for name, text := range map[string]string{"stage": l.stage, "reason": l.reason, "detail": deref(l.detail), "field": deref(l.field), "event_id": deref(l.eventID)} {
				limit := warehouse.MaxKeyText
				if name == "detail" {
					limit = warehouse.MaxDetailText
				}
				if !utf8.ValidString(text) || strings.IndexByte(text, 0) >= 0 || len(text) > limit {
					t.Errorf("letter %d: %s is %d bytes, valid UTF-8 %t: want valid UTF-8 without NUL, at most %d bytes",
						i, name, len(text), utf8.ValidString(text), limit)
				}
			}
			if !bytes.Equal(l.payload, rejections[i].GetPayload()) {
				t.Errorf("letter %d: payload of %d bytes, want the %d original bytes", i, len(l.payload), len(rejections[i].GetPayload()))
			}
		}
		if got := deref(letters[2].detail); !strings.Contains(got, "truncated from") {
			t.Errorf("1 MiB detail stored as %d bytes without the truncation mark", len(got))
		}
	})
}

func TestSameEventDeadLetteredOnceWhateverItsPosition(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		// A producer retried after a 503 and its first put had landed: the same inconsistent
		// line sits at two positions of the stream, in one batch or in two.
		rejectionAt := func(seq string, version int64) *warehousev1.Rejection {
			r := newRejection(seq, "validate")
			r.EventId = "evt-retried"
			r.EventVersion = version
			return r
		}
		req := request("", "20")
		req.Rejections = []*warehousev1.Rejection{rejectionAt("11", 1), rejectionAt("12", 1)}
		assertCounts(t, mustLoad(t, e.store, req), counts{deadLettered: 1})

		// A third copy in a later batch is a duplicate too; a new version of the event is not.
		req = request("20", "30")
		req.Rejections = []*warehousev1.Rejection{rejectionAt("21", 1), rejectionAt("22", 2)}
		assertCounts(t, mustLoad(t, e.store, req), counts{deadLettered: 1})

		letters := readLettersWithVersion(t, e)
		if len(letters) != 2 {
			t.Fatalf("dead letters = %d, want 2 (one per version): %+v", len(letters), letters)
		}
		for i, want := range []struct {
			seq     string
			version int64
		}{{"11", 1}, {"22", 2}} {
			if l := letters[i]; l.seq != want.seq || l.version == nil || *l.version != want.version {
				t.Errorf("letter %d: at %s, version %v; want at %s, version %d", i, l.seq, l.version, want.seq, want.version)
			}
		}

		// Another stage or reason for the same event is another dead letter; a rejection whose
		// version is unknown is deduplicated by position only.
		other := rejectionAt("31", 1)
		other.Reason = "walks_exceed_plate_appearances"
		unknown1, unknown2 := rejectionAt("32", 0), rejectionAt("33", 0)
		req = request("30", "40")
		req.Rejections = []*warehousev1.Rejection{other, unknown1, unknown2}
		assertCounts(t, mustLoad(t, e.store, req), counts{deadLettered: 3})

		// Two ids that differ only in unstorable bytes are stored alike but are not one event.
		nul, replacement := rejectionAt("41", 1), rejectionAt("42", 1)
		nul.EventId, replacement.EventId = "evt-\x00", "evt-\uFFFD"
		req = request("40", "50")
		req.Rejections = []*warehousev1.Rejection{nul, replacement}
		assertCounts(t, mustLoad(t, e.store, req), counts{deadLettered: 2})
	})
}

func TestRowWithOverlongTextIsDeadLettered(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, newEnv func(*testing.T, int32) *env) {
		e := newEnv(t, 1)
		// A game id of 3,000 bytes fits a text column but not the primary key's index entry
		// (SQLSTATE 54000, which is not a data error): sent, it would fail the whole batch.
		long := newRow(1, strings.Repeat("g", 3000), 1, "evt-long", "11")
		resp := mustLoad(t, e.store, request("", "20", long, newRow(2, "g2", 1, "evt-2", "12")))
		assertCounts(t, resp, counts{inserted: 1, deadLettered: 1})
		letters := readLettersWithVersion(t, e)
		if len(letters) != 1 {
			t.Fatalf("dead letters = %d, want 1", len(letters))
		}
		l := letters[0]
		if l.stage != warehouse.StageLoad || l.reason != warehouse.ReasonTextTooLong || deref(l.field) != "game_id" ||
			l.seq != "11" || deref(l.eventID) != "evt-long" || !bytes.Contains(l.payload, []byte(long.GetGameId())) {
			t.Errorf("dead letter = stage %s, reason %s, field %s, at %s, event %s; want load/%s/game_id at 11 for evt-long with the row as payload",
				l.stage, l.reason, deref(l.field), l.seq, deref(l.eventID), warehouse.ReasonTextTooLong)
		}
	})
}
