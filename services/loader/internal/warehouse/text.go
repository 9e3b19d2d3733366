package warehouse

import (
	"strconv"
	"unicode/utf8"

	"github.com/boxscore-dev/boxscore/pkg/deadletter"
	"github.com/boxscore-dev/boxscore/pkg/statevent"
)

// Bounds, in bytes of UTF-8, of the text the loader stores. PostgreSQL text holds neither
// NUL nor invalid UTF-8 (SQLSTATE 22021), and a btree index entry holds at most about
// 2,700 bytes (SQLSTATE 54000): a value that breaks either rule would fail the whole
// transaction, and with it the shard. The bounds keep every indexed tuple far below the
// index limit and a dead letter's detail readable; the dead letter's payload (bytea) keeps
// the record's bytes whatever they are.
const (
	// MaxKeyText bounds the dead-letter columns that identify or classify it (stage,
	// reason, field, event_id): together they form an index entry.
	MaxKeyText = 256
	// MaxDetailText bounds a dead letter's detail.
	MaxDetailText = 8 << 10
	// MaxRowText bounds every text column of a fact row (game_id is part of the primary
	// key). The transformer's own limits are far below it.
	MaxRowText = 1 << 10
)

// truncatedMark ends a value cut at its bound, followed by its original length in bytes.
const truncatedMark = "…[truncated from "

// storableText returns s as PostgreSQL can store it in a text column, in at most maxBytes
// bytes, and whether it had to change it: every NUL byte, and every run of bytes that is not
// UTF-8, becomes U+FFFD; and a value longer than maxBytes (after that) is cut on a character
// boundary and ends with "…[truncated from N bytes]". Every text value of a dead letter
// passes through it (DeadLetter.storable). A fact row is never stored altered: one with an
// overlong value is dead-lettered before it is sent (rowTextTooLong), one with NUL or
// invalid UTF-8 is refused by the database and isolated by bisection, and its dead letter
// goes through here. maxBytes must leave room for the mark (at least 64).
func storableText(s string, maxBytes int) (string, bool) {
	if textProblem(s, maxBytes) == "" {
		return s, false
	}
	clean := deadletter.StorableText(s)
	if len(clean) <= maxBytes {
		return clean, true
	}
	mark := truncatedMark + strconv.Itoa(len(s)) + " bytes]"
	cut := maxBytes - len(mark)
	for cut > 0 && !utf8.RuneStart(clean[cut]) {
		cut--
	}
	return clean[:cut] + mark, true
}

// textProblem says why s cannot be stored as is in a text column bounded by maxBytes ("" when
// it can). The rules are statevent's, the ones the transformer checks its rows with, so a
// row it lets through is one the loader stores.
func textProblem(s string, maxBytes int) string { return statevent.StorableTextProblem(s, maxBytes) }
