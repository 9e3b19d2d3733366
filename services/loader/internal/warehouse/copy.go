package warehouse

import (
	"encoding/binary"
	"math"
	"sync"
	"time"
)

// The staging table's COPY data is written here in PostgreSQL's binary COPY format, a row at
// a time with the column types fixed by stagingColumnsSQL, instead of handing pgx a []any per
// row: pgx looks up an encode plan for every value (reflection and two map lookups, 37 per
// row) and boxes each one, which was a fifth of a Load's CPU. The staging table is declared
// with exactly these types (not LIKE the fact table), so the encoding cannot drift from it:
// a later migration that changes a fact column's type changes the upsert's implicit cast,
// never the bytes of the COPY.

// copyHeader starts binary COPY data: the signature, no flags, no header extension.
var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// copyTrailer ends binary COPY data: a field count of -1.
var copyTrailer = []byte{0xff, 0xff}

// Epochs of PostgreSQL's binary date (days) and timestamptz (microseconds): 2000-01-01 UTC.
const (
	postgresEpochUnixSeconds = 946_684_800
	secondsPerDay            = 86_400
)

// copyBuffers keeps the COPY buffers of finished loads: a batch of 500 rows is ~200 KB.
var copyBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledCopyBuffer bounds a buffer kept for reuse, so one huge batch does not pin its
// memory for good.
const maxPooledCopyBuffer = 4 << 20

func getCopyBuffer() *[]byte { return copyBuffers.Get().(*[]byte) } //nolint:forcetypeassert // the pool only holds *[]byte

func putCopyBuffer(b *[]byte) {
	if cap(*b) > maxPooledCopyBuffer {
		return
	}
	*b = (*b)[:0]
	copyBuffers.Put(b)
}

// appendCopyData appends the binary COPY data of rows, in postgresStagingColumns' order, to buf;
// players says whether the player's name and team are sent (NULL otherwise).
func appendCopyData(buf []byte, rows []FactRow, players bool) []byte {
	buf = append(buf, copyHeader...)
	for i := range rows {
		buf = appendCopyRow(buf, &rows[i], players)
	}
	return append(buf, copyTrailer...)
}

// appendCopyRow appends one row: its field count, then each field as a length (-1: NULL)
// and its bytes, in postgresStagingColumns' order and stagingColumnsSQL's types.
func appendCopyRow(buf []byte, r *FactRow, players bool) []byte {
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(postgresStagingColumns)))
	buf = appendInt64(buf, r.PlayerID)
	buf = appendText(buf, r.GameID)
	buf = appendDate(buf, r.GameDate)
	buf = appendInt16(buf, r.GameNumber)
	buf = appendInt16(buf, r.Season)
	buf = appendText(buf, r.Opponent)
	buf = appendBool(buf, r.Home)
	for _, n := range [...]int32{
		r.PlateAppearances, r.AtBats, r.Runs, r.Hits, r.Singles, r.Doubles, r.Triples, r.HomeRuns, r.RBI,
		r.BaseOnBalls, r.IntentionalWalks, r.StrikeOuts, r.HitByPitch, r.SacBunts, r.SacFlies,
		r.StolenBases, r.CaughtStealing, r.GroundIntoDoublePlay,
		r.TotalBases, r.ExtraBaseHits, r.TimesOnBase,
	} {
		buf = appendInt32(buf, n)
	}
	buf = appendText(buf, r.EventID)
	buf = appendInt64(buf, r.Version)
	buf = appendTimestamptz(buf, r.SourceTime)
	buf = appendTimestamptz(buf, r.AcceptedAt)
	for _, s := range [...]*string{r.SourceStream, r.SourceShardID, r.SourceSequenceNumber, r.TraceID, r.Producer} {
		buf = appendOptionalText(buf, s)
	}
	if !players {
		return appendNull(appendNull(buf))
	}
	return appendText(appendText(buf, r.PlayerName), r.PlayerTeam)
}

func appendLength(buf []byte, n int) []byte { return binary.BigEndian.AppendUint32(buf, uint32(n)) }

func appendNull(buf []byte) []byte { return binary.BigEndian.AppendUint32(buf, math.MaxUint32) } // -1

func appendInt16(buf []byte, n int16) []byte {
	return binary.BigEndian.AppendUint16(appendLength(buf, 2), uint16(n))
}

func appendInt32(buf []byte, n int32) []byte {
	return binary.BigEndian.AppendUint32(appendLength(buf, 4), uint32(n))
}

func appendInt64(buf []byte, n int64) []byte {
	return binary.BigEndian.AppendUint64(appendLength(buf, 8), uint64(n))
}

func appendBool(buf []byte, b bool) []byte {
	var v byte
	if b {
		v = 1
	}
	return append(appendLength(buf, 1), v)
}

// appendText sends the bytes as they are, as pgx does: the server checks them (NUL and
// invalid UTF-8 are refused with a data error, which bisection isolates).
func appendText(buf []byte, s string) []byte { return append(appendLength(buf, len(s)), s...) }

func appendOptionalText(buf []byte, s *string) []byte {
	if s == nil {
		return appendNull(buf)
	}
	return appendText(buf, *s)
}

// appendDate sends the calendar date of t (its year, month and day, as pgtype.Date does) as
// days since 2000-01-01.
func appendDate(buf []byte, t time.Time) []byte {
	midnight := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).Unix()
	return appendInt32(buf, int32((midnight-postgresEpochUnixSeconds)/secondsPerDay))
}

// appendTimestamptz sends t as microseconds since 2000-01-01 UTC (as pgtype.Timestamptz
// does: sub-microsecond digits dropped), or NULL.
func appendTimestamptz(buf []byte, t *time.Time) []byte {
	if t == nil {
		return appendNull(buf)
	}
	micros := t.Unix()*1_000_000 + int64(t.Nanosecond())/1_000
	return appendInt64(buf, micros-postgresEpochUnixSeconds*1_000_000)
}
